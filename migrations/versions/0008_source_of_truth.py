"""source of truth: inventory origin columns, sync history, status write-back queue

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=16), nullable=False, server_default='csv'))
        batch_op.add_column(sa.Column('sot_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('vendor', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('model', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('site', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('sot_status', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('mac_address', sa.String(length=17), nullable=True))
        batch_op.add_column(sa.Column('ip_address', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('image', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('rendered_config', LongText, nullable=True))
        batch_op.create_index('ix_inventory_mac_address', ['mac_address'])
    op.create_table(
        'sot_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('serial_number', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_sot_change_serial_number', 'sot_change', ['serial_number'])
    op.create_table(
        'sot_writeback',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('serial_number', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('sot_id', sa.String(length=64), nullable=True),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=50), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('next_try_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_sot_writeback_serial_number', 'sot_writeback', ['serial_number'])
    op.create_index('ix_sot_writeback_done_next', 'sot_writeback', ['done_at', 'next_try_at'])


def downgrade() -> None:
    op.drop_table('sot_writeback')
    op.drop_table('sot_change')
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.drop_index('ix_inventory_mac_address')
        for name in ('rendered_config', 'image', 'ip_address', 'mac_address', 'sot_status', 'site', 'model',
                     'vendor', 'sot_id', 'source'):
            batch_op.drop_column(name)
