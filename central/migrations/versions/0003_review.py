"""Reviewed clips and their labels versions (the result page's editor): `review_clips` (a clip kept in the data
directory, its state, its catalogue) and `label_versions` (every version, the box's prediction as 0).

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_clips",
        sa.Column("clip_id", sa.String(length=16), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("bundle", sa.String(length=128), nullable=False),
        sa.Column("catalog", sa.JSON(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("video", sa.String(length=64), nullable=False),
        sa.Column("video_sha256", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sa.String(length=16), nullable=True),
        sa.Column("verified_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("clip_id"),
    )
    op.create_index(op.f("ix_review_clips_store"), "review_clips", ["store"], unique=False)
    op.create_table(
        "label_versions",
        sa.Column("clip_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("token_id", sa.String(length=16), nullable=True),
        sa.Column("saved", sa.DateTime(timezone=True), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["clip_id"], ["review_clips.clip_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("clip_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("label_versions")
    op.drop_index(op.f("ix_review_clips_store"), table_name="review_clips")
    op.drop_table("review_clips")
