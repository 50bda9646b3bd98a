"""Device identity and growth bounds: serial numbers compare exactly (binary collation on
MariaDB), ``source_hold`` for a serial driven from a new address, an index on event times
for pruning the history in batches.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

#: MariaDB compares utf8mb4_general_ci / unicode_ci strings without case and accents:
#: SN:M2CASEabc and SN:M2CASEABC were one row. SQLite's "=" is already binary.
_SERIAL_COLUMNS = (('device_state', 'serial_number'), ('inventory', 'serial_number'))


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name not in ('mysql', 'mariadb'):
        return
    for table, column in _SERIAL_COLUMNS:
        op.execute(f'ALTER TABLE {table} MODIFY {column} VARCHAR(64) '
                   f'CHARACTER SET utf8mb4 COLLATE {collation} NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_hold', sa.String(length=45), nullable=True))
    op.create_index('ix_device_event_at', 'device_event', ['at'])
    _collate('utf8mb4_bin')


def downgrade() -> None:
    _collate('utf8mb4_general_ci')
    op.drop_index('ix_device_event_at', table_name='device_event')
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.drop_column('source_hold')
