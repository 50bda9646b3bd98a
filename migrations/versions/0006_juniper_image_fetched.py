"""image_fetched_at: when a Juniper device last fetched its image completely

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_fetched_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('device_state', schema=None) as batch_op:
        batch_op.drop_column('image_fetched_at')
