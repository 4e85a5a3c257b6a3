"""Familiarity (issue 25): whether a box's pick, put-back, action or visit came from footage like its model's training
(events.familiar: NULL unknown, a box without a guard), the kind of an alert (an unscanned unit, or "box unsure": one
only an unfamiliar event counted), and since when a box's unfamiliar share has stayed high (boxes.unfamiliar_since).

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("familiar", sa.Boolean(), nullable=True))
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="unscanned"))
    with op.batch_alter_table("boxes") as batch:
        batch.add_column(sa.Column("unfamiliar_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("boxes") as batch:
        batch.drop_column("unfamiliar_since")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("familiar")
