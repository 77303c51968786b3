"""A real headless browser for tests that check what a person sees: Debian's Chromium via Selenium.

`.ci/run` installs `chromium` and `chromium-driver` from the Debian packages; Playwright's own
browser download cannot work offline. Selenium is pointed at those binaries explicitly, so its
driver manager never tries the network. Where they are missing the test is skipped with the
package names to install, never passed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("chromedriver", "chromium-driver")


def _first_on_path(names: tuple[str, ...]) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium WebDriver at a laptop's window size (1366x900)."""
    binary, driver_path = _first_on_path(CHROMIUM_CANDIDATES), _first_on_path(DRIVER_CANDIDATES)
    if not binary or not driver_path:
        pytest.skip("no Chromium here: `apt-get install chromium chromium-driver` (the Debian packages)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not reach for the network
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, name: str) -> Path:
    """Keep a screenshot as a test artifact under reports/screenshots/ (CI uploads reports/)."""
    out = Path(__file__).resolve().parents[1] / "reports" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path
