"""Generate the committed sample customers.csv: deterministic (fixed seed), stdlib only.

    python pipeline_defs/feature_ingestion/sample/generate.py            # rewrite customers.csv
    python pipeline_defs/feature_ingestion/sample/generate.py --check    # exit 1 if it is stale

Columns are exactly pipeline_defs/features.py FEATURES. The label follows a logistic model of
tenure, charges, support calls, contract and internet plan, so it is learnable (AUC ~0.8) but
noisy. A few customers appear twice (an older and a newer observation) so the "latest record
per customer" logic of the training preprocessing is exercised.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20240601
CUSTOMERS = 400
REPEATED = 30  # customers that also have an older observation
START = datetime(2024, 1, 1, tzinfo=UTC)
OUT = Path(__file__).resolve().with_name("customers.csv")
COLUMNS = (
    "customer_id",
    "event_time",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract_months",
    "has_internet",
    "churned",
)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _customer(rng: random.Random, index: int, when: datetime) -> dict:
    tenure = rng.randint(1, 72)
    contract = rng.choices((1, 12, 24), weights=(5, 3, 2))[0]
    internet = 1 if rng.random() < 0.7 else 0
    monthly = round(rng.uniform(18.0, 60.0) + internet * rng.uniform(10.0, 60.0), 2)
    total = round(monthly * tenure * rng.uniform(0.95, 1.05), 2)
    calls = min(9, int(rng.expovariate(0.6)))
    z = (
        0.4
        - 0.045 * tenure
        + 0.025 * (monthly - 65.0)
        + 0.55 * calls
        - 1.1 * (contract == 12)
        - 2.2 * (contract == 24)
        + 0.5 * internet
    )
    churned = 1 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 0
    return {
        "customer_id": f"C{index:05d}",
        "event_time": _iso(when),
        "tenure_months": tenure,
        "monthly_charges": f"{monthly:.2f}",
        "total_charges": f"{total:.2f}",
        "support_calls": calls,
        "contract_months": contract,
        "has_internet": internet,
        "churned": churned,
    }


def generate() -> str:
    rng = random.Random(SEED)
    rows = []
    for index in range(1, CUSTOMERS + 1):
        when = START + timedelta(days=rng.randint(30, 150), seconds=rng.randint(0, 86399))
        rows.append(_customer(rng, index, when))
    for index in rng.sample(range(1, CUSTOMERS + 1), REPEATED):
        older = START + timedelta(days=rng.randint(0, 29), seconds=rng.randint(0, 86399))
        rows.append(_customer(rng, index, older))
    rows.sort(key=lambda r: (r["customer_id"], r["event_time"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if customers.csv is not up to date")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT}: stale; run {Path(__file__).name} to regenerate", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10)) - 1} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
