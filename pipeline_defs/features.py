"""The customer feature schema, declared once: the Feature Group, ingestion and training read it.

infra/ builds the AWS::SageMaker::FeatureGroup from it, the ingestion step validates CSV rows
against it, and the training pipeline's Athena query selects exactly these columns.
Pure Python on purpose: step containers import it without the SageMaker SDK.
"""

from __future__ import annotations

from dataclasses import dataclass

RECORD_IDENTIFIER = "customer_id"
EVENT_TIME = "event_time"
LABEL = "churned"


@dataclass(frozen=True)
class Feature:
    name: str
    feature_type: str  # Feature Store types: String | Integral | Fractional
    description: str

    @property
    def athena_type(self) -> str:
        return {"String": "string", "Integral": "bigint", "Fractional": "double"}[self.feature_type]


FEATURES: tuple[Feature, ...] = (
    Feature(RECORD_IDENTIFIER, "String", "Stable customer identifier"),
    Feature(EVENT_TIME, "String", "ISO-8601 UTC time the record was observed"),
    Feature("tenure_months", "Integral", "Months since the customer signed up"),
    Feature("monthly_charges", "Fractional", "Current monthly bill in USD"),
    Feature("total_charges", "Fractional", "Lifetime billed amount in USD"),
    Feature("support_calls", "Integral", "Support calls in the last 90 days"),
    Feature("contract_months", "Integral", "Contract length: 1, 12 or 24"),
    Feature("has_internet", "Integral", "1 if the customer has an internet plan, else 0"),
    Feature(LABEL, "Integral", "1 if the customer left within 30 days, else 0 (label)"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
MODEL_INPUTS: tuple[str, ...] = tuple(f.name for f in FEATURES if f.name not in (RECORD_IDENTIFIER, EVENT_TIME, LABEL))


def offline_store_query(database: str, table: str) -> str:
    """Athena SQL reading the latest record per customer from the offline store (no deleted rows)."""
    columns = ", ".join(FEATURE_NAMES)
    return (
        f"SELECT {columns} FROM ("
        f"SELECT {columns}, row_number() OVER ("
        f"PARTITION BY {RECORD_IDENTIFIER} ORDER BY {EVENT_TIME} DESC, api_invocation_time DESC) AS rn"
        f' FROM "{database}"."{table}" WHERE NOT is_deleted'
        f") WHERE rn = 1"
    )
