"""The operator page in a real headless Chromium: what a person sees after a few predictions."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from browser import screenshot
from conftest import FEATURES, MODEL_ID, AppDatabase, ScriptedInvoker, app_settings
from prediction_service.api import create_app
from prediction_service.database import Database
from prediction_service.migrate import migrate
from selenium.webdriver.common.by import By

from gitops.local.app_process import http
from gitops.local.embedded import free_port


@pytest.fixture
def served(app_db: AppDatabase, tmp_path):
    """The app on a loopback port (uvicorn in a thread), with an endpoint that takes ~30-60 ms."""
    migrate(app_db.credentials().current())
    port = free_port()
    app = create_app(
        app_settings(app_db, tmp_path, stage="dev"),
        invoker=ScriptedInvoker(delay_s=0.03),
        database=Database(app_db.credentials(), max_size=2),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_page_shows_recent_predictions_their_latency_and_the_model(served, browser):
    customers = [("c-1001", 0, 24), ("c-1002", 2, 12), ("c-1003", 5, 1), ("c-1004", 7, 1)]
    ids = []
    for customer, calls, contract in customers:
        features = {**FEATURES, "support_calls": calls, "contract_months": contract}
        status, answer = http("POST", served + "/predict", {"customer_id": customer, "features": features})
        assert status == 200, answer
        ids.append(answer["prediction_id"])
    assert http("POST", served + "/feedback", {"prediction_id": ids[-1], "true_label": 1})[0] == 200

    browser.get(served + "/")
    assert browser.title == "Predictions · dev"
    assert browser.find_element(By.ID, "model-id").text == MODEL_ID
    assert browser.find_element(By.ID, "health").text == "serving"
    rows = browser.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
    assert len(rows) == 4
    newest = rows[0].find_elements(By.TAG_NAME, "td")
    assert newest[1].text == "c-1004" and newest[3].text == "churn" and newest[4].text == "churned"
    assert newest[5].text.endswith(" ms") and int(newest[5].text.split()[0]) >= 30  # the endpoint's ~30 ms
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["c-1004", "c-1003", "c-1002", "c-1001"]
    cards = browser.find_element(By.CLASS_NAME, "cards").text
    assert "4\npredictions in the last hour" in cards and "p90 latency (1 h)" in cards
    assert "100%\naccuracy on 1 labelled" in cards
    assert browser.find_element(By.CSS_SELECTOR, "svg[aria-label='latency of the last 4 predictions']").is_displayed()
    assert screenshot(browser, "app-page").stat().st_size > 10_000
