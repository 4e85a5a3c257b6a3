"""Baseline: the schema central created before migrations (commit 4748cef). A database made then has no
alembic_version table; `central.migrate` stamps it with this revision instead of running it.

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-06 02:20:19.353908
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(length=256), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_id"),
    )
    op.create_table(
        "boxes",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("status_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("max_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "box"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=256), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("shopper", sa.BigInteger(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("events_by_box_seq", ["store", "box", "epoch", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_store"), ["store"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_ts"), ["ts"], unique=False)

    op.create_table(
        "gaps",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("store", "box", "epoch", "first_seq"),
    )
    op.create_table(
        "pos_items",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store", "message_id"),
    )
    with op.batch_alter_table("pos_items", schema=None) as batch_op:
        batch_op.create_index("pos_items_by_transaction", ["store", "transaction_id"], unique=False)

    op.create_table(
        "pos_transactions",
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("lane", sa.String(length=64), nullable=False),
        sa.Column("opened", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("store", "transaction_id"),
    )
    op.create_table(
        "insight_visit_products",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("start_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reached", sa.Integer(), nullable=False),
        sa.Column("inspected", sa.Integer(), nullable=False),
        sa.Column("inspect_s", sa.Float(), nullable=False),
        sa.Column("picked", sa.Integer(), nullable=False),
        sa.Column("put_back", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "sku"),
    )
    with op.batch_alter_table("insight_visit_products", schema=None) as batch_op:
        batch_op.create_index("insight_visit_products_store_ts", ["store", "start_ts"], unique=False)
        batch_op.create_index("insight_visit_products_ts", ["start_ts"], unique=False)

    op.create_table(
        "insight_visit_zones",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("start_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dwell_s", sa.Float(), nullable=False),
        sa.Column("inspect_shelf_s", sa.Float(), nullable=False),
        sa.Column("picked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "zone"),
    )
    with op.batch_alter_table("insight_visit_zones", schema=None) as batch_op:
        batch_op.create_index("insight_visit_zones_store_ts", ["store", "start_ts"], unique=False)
        batch_op.create_index("insight_visit_zones_ts", ["start_ts"], unique=False)

    op.create_table(
        "insight_visits",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=64), nullable=False),
        sa.Column("shopper", sa.Integer(), nullable=False),
        sa.Column("start_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dwell_s", sa.Float(), nullable=False),
        sa.Column("inspect_shelf_s", sa.Float(), nullable=False),
        sa.Column("picked", sa.Integer(), nullable=False),
        sa.Column("put_back", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("insight_visits", schema=None) as batch_op:
        batch_op.create_index("insight_visits_store_ts", ["store", "start_ts"], unique=False)
        batch_op.create_index("insight_visits_ts", ["start_ts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("insight_visits", schema=None) as batch_op:
        batch_op.drop_index("insight_visits_ts")
        batch_op.drop_index("insight_visits_store_ts")

    op.drop_table("insight_visits")
    with op.batch_alter_table("insight_visit_zones", schema=None) as batch_op:
        batch_op.drop_index("insight_visit_zones_ts")
        batch_op.drop_index("insight_visit_zones_store_ts")

    op.drop_table("insight_visit_zones")
    with op.batch_alter_table("insight_visit_products", schema=None) as batch_op:
        batch_op.drop_index("insight_visit_products_ts")
        batch_op.drop_index("insight_visit_products_store_ts")

    op.drop_table("insight_visit_products")
    op.drop_table("pos_transactions")
    with op.batch_alter_table("pos_items", schema=None) as batch_op:
        batch_op.drop_index("pos_items_by_transaction")

    op.drop_table("pos_items")
    op.drop_table("gaps")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_ts"))
        batch_op.drop_index(batch_op.f("ix_events_store"))
        batch_op.drop_index(batch_op.f("ix_events_kind"))
        batch_op.drop_index("events_by_box_seq")

    op.drop_table("events")
    op.drop_table("dead_letters")
    op.drop_table("boxes")
    op.drop_table("api_tokens")
    op.drop_table("alerts")
