"""Device list indexes: ``device_state (state, last_contact)`` for the dashboard's counts and
its "attention" order (parked first, then devices silent since before STALLED_AFTER), the
stalled filter and the per-state counts read at every 5 s refresh; ``device_state (pid)``,
``device_state (running_version)`` and ``inventory (template)`` for the filter choices
(SELECT DISTINCT from an index) and the pid/version prefix filters.

Decided by measurement (BENCHMARKS.md, "Dashboard at 10,000 devices"): the natural sorts
(ip, version, serial, hostname) are not indexed: the listing is a UNION ALL of seen and
planned devices, so MariaDB sorts it in a temporary table whatever the base tables index,
and a stored NATURAL_SORT_KEY column per sort would cost every PnP message an index update.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 13:00:00
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


INDEXES = (('ix_device_state_state_last_contact', 'device_state', ['state', 'last_contact']),
           ('ix_device_state_pid', 'device_state', ['pid']),
           ('ix_device_state_running_version', 'device_state', ['running_version']),
           ('ix_inventory_template', 'inventory', ['template']))


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
