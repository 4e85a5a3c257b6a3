"""Alembic's environment for central's database: migrations run on the connection `central.migrate` hands over
(inside its transaction), against the tables of `central.db` and `central.insights`."""

from alembic import context

from central import db, insights

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=[db.metadata, insights.metadata],
    render_as_batch=True,  # SQLite alters a table by copying it: autogenerate writes batch operations
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
