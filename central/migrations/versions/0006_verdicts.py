"""Review queue and alert verdicts (issue 29): a manager's verdict on an alert (confirmed or wrong, with a note, who
and when; NULL: open), and the analysis central made of a clip a box kept (`files.analysis`), which the review queue
opens in the editor.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("verdict_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("verdict_by", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("analysis", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("analysis")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("verdict_at")
        batch.drop_column("verdict_by")
        batch.drop_column("verdict_note")
        batch.drop_column("verdict")
