"""The operator page: recent predictions, their latency and the model served, as one self-contained HTML page.

No script, font or stylesheet is fetched from anywhere: the page works inside a private network
and its content is escaped. It refreshes itself every 15 seconds.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any


def _ms(value: Any) -> str:
    return "–" if value is None else f"{float(value):.0f} ms"


def _latency_bars(latencies: list[float], width: int = 420, height: int = 60) -> str:
    """An inline SVG bar per prediction, oldest left, scaled to the slowest (no chart library)."""
    if not latencies:
        return '<p class="muted">The latency chart appears with the first prediction.</p>'
    top = max(latencies) or 1.0
    slot = min(width / len(latencies), 18.0)  # narrow bars: a few predictions still read as a series
    bars = "".join(
        f'<rect x="{i * slot + 1:.1f}" y="{height - max(2.0, v / top * height):.1f}" width="{max(1.0, slot - 2):.1f}" '
        f'height="{max(2.0, v / top * height):.1f}" fill="#2563eb"><title>{v:.0f} ms</title></rect>'
        for i, v in enumerate(latencies)
    )
    return (
        f'<svg role="img" aria-label="latency of the last {len(latencies)} predictions" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" style="background:#fff;border:1px solid #e5e7eb">{bars}'
        f'</svg><p class="muted">each bar one prediction, oldest left; tallest {top:.0f} ms</p>'
    )


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else escape(str(value))


def _row(p: dict[str, Any]) -> str:
    probability = float(p["churn_probability"])
    label = p.get("true_label")
    truth = "–" if label is None else ("churned" if label else "stayed")
    verdict = "churn" if p["churned"] else "stay"
    customer = escape(str((p.get("request") or {}).get("customer_id", "–")))
    return (
        f'<tr data-prediction-id="{escape(p["id"])}"><td>{_when(p["created_at"])}</td><td>{customer}</td>'
        f'<td><span class="bar"><span style="width:{probability * 100:.0f}%"></span></span> {probability:.2f}</td>'
        f'<td class="{verdict}">{verdict}</td><td>{truth}</td><td class="num">{_ms(p["latency_ms"])}</td>'
        f'<td class="model">{escape(str(p["model_id"]))}</td></tr>'
    )


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#111827}
header{background:#111827;color:#f9fafb;padding:16px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d1d5db}main{padding:20px 28px}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;min-width:150px}
.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:13px}
.ok{color:#047857}.bad{color:#b91c1c}.muted{color:#6b7280;font-size:13px;margin:2px 0}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e5e7eb}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #f0f1f3;font-size:14px}
th{background:#f9fafb;color:#374151}.num{text-align:right}.model{font-family:ui-monospace,monospace;font-size:12px}
.bar{display:inline-block;width:70px;height:8px;background:#e5e7eb;border-radius:4px;vertical-align:middle}
.bar span{display:block;height:8px;background:#f59e0b;border-radius:4px}.churn{color:#b91c1c;font-weight:600}
"""


def render_page(
    *,
    stage: str,
    endpoint_name: str,
    model_id: str,
    recent: list[dict[str, Any]],
    summary: dict[str, Any],
    health: dict[str, Any],
) -> str:
    ready = health.get("ready", False)
    checks = " · ".join(
        f'{escape(name)} <b class="{"ok" if c["ready"] else "bad"}">{"ready" if c["ready"] else "not ready"}</b>'
        for name, c in health.get("checks", {}).items()
    )
    accuracy = summary.get("accuracy")
    cards = [
        (str(summary.get("predictions", 0)), "predictions in the last hour"),
        (_ms(summary.get("p50_ms")), "median latency (1 h)"),
        (_ms(summary.get("p90_ms")), "p90 latency (1 h)"),
        ("–" if accuracy is None else f"{accuracy:.0%}", f"accuracy on {summary.get('labelled', 0)} labelled"),
    ]
    card_html = "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(t)}</span></div>' for v, t in cards)
    latencies = [float(p["latency_ms"]) for p in reversed(recent)]
    rows = "".join(_row(p) for p in recent) or '<tr><td colspan="7" class="muted">No predictions yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="15">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Predictions · {escape(stage)}</title>
<style>{STYLE}</style></head>
<body><header><h1>Churn predictions · {escape(stage)}</h1>
<p>Model <span id="model-id" class="model">{escape(model_id)}</span> on endpoint
<span id="endpoint">{escape(endpoint_name)}</span> · <span id="health" class="{"ok" if ready else "bad"}">
{"serving" if ready else "not ready"}</span> ({checks})</p></header>
<main><div class="cards">{card_html}</div>
<section><h2 style="font-size:16px;margin:0 0 6px">Latency</h2>{_latency_bars(latencies)}</section>
<h2 style="font-size:16px">Recent predictions</h2>
<table id="recent"><thead><tr><th>Time</th><th>Customer</th><th>Churn probability</th><th>Prediction</th>
<th>True label</th><th class="num">Latency</th><th>Model</th></tr></thead><tbody>{rows}</tbody></table>
</main></body></html>"""
