"""Predictions: each request, its answer, the model that gave it and the latency.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", postgresql.UUID(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("answer", postgresql.JSONB(), nullable=False),
        sa.Column("churn_probability", sa.Float(), nullable=False),
        sa.Column("churned", sa.SmallInteger(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("endpoint_name", sa.Text(), nullable=False),
        sa.Column("variant", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.CheckConstraint("churn_probability BETWEEN 0 AND 1", name="probability_in_range"),
        sa.CheckConstraint("churned IN (0, 1)", name="churned_is_a_class"),
    )
    op.create_index("predictions_created_at", "predictions", ["created_at"])


def downgrade() -> None:
    op.drop_index("predictions_created_at", table_name="predictions")
    op.drop_table("predictions")
