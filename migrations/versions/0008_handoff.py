"""closed-won handoffs to customer success, one per account (issue 15)

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.store

revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'handoff',
        sa.Column('account_id', sa.String(length=36), nullable=False),
        sa.Column('opportunity_id', sa.String(length=36), nullable=False),
        sa.Column('system', sa.String(length=40), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('missing', sa.JSON(), nullable=False),
        sa.Column('owners', sa.JSON(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('completeness', sa.Float(), nullable=False),
        sa.Column('first_completeness', sa.Float(), nullable=False),
        sa.Column('detected_at', sync.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('completed_at', sync.store.UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sync.store.UTCDateTime(timezone=True), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('account_id'),
    )
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_state'), ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_state'))
    op.drop_table('handoff')
