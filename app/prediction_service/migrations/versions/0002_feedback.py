"""Feedback: the true label of a prediction, recorded later (one per prediction, correctable).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column(
            "prediction_id",
            postgresql.UUID(),
            sa.ForeignKey("predictions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("true_label", sa.SmallInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("true_label IN (0, 1)", name="true_label_is_a_class"),
    )


def downgrade() -> None:
    op.drop_table("feedback")
