"""failed_state: the step a device in ERROR stopped in

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_state', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.drop_column('failed_state')
