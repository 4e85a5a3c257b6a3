"""The box-central channel: box tokens (api_tokens.box), the files boxes upload and central addresses to them,
and the control messages central sent.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("box", sa.String(length=64), nullable=True))
    op.create_table(
        "files",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("covers", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("store", "box", "kind", "name"),
    )
    op.create_table(
        "controls",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sent", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store", "box", "name"),
    )


def downgrade() -> None:
    op.drop_table("controls")
    op.drop_table("files")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("box")
