"""webhooks and their delivery queue

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('url', sa.String(length=1024), nullable=False),
        sa.Column('events', sa.String(length=255), nullable=False),
        sa.Column('preset', sa.String(length=16), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
    )
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('webhook_id', sa.Integer(), sa.ForeignKey('webhook.id', ondelete='CASCADE'), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('serial', sa.String(length=64), nullable=True),
        sa.Column('dedupe_key', sa.String(length=191), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
    )
    op.create_index('ix_webhook_delivery_due', 'webhook_delivery', ['status', 'next_attempt_at'])
    op.create_index('uq_webhook_delivery_dedupe', 'webhook_delivery', ['webhook_id', 'dedupe_key'], unique=True)


def downgrade() -> None:
    op.drop_table('webhook_delivery')
    op.drop_table('webhook')
