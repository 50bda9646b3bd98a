"""Outcomes kept apart: unknown_outcomes, verifying, error_kind, auto_retry_at, auto_retry_rounds

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unknown_outcomes', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('verifying', sa.Boolean(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('error_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('auto_retry_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('auto_retry_rounds', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        for name in ('auto_retry_rounds', 'auto_retry_at', 'error_kind', 'verifying',
                     'unknown_outcomes'):
            batch_op.drop_column(name)
