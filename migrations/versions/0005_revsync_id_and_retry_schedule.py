"""the revsync id each remote record carries; when a failed write is retried next

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.store

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revsync_id', sa.String(length=36), nullable=True))
    with op.batch_alter_table('error_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', sync.store.UTCDateTime(timezone=True), nullable=True))
    # records revsync created, or linked by the id they carry, hold their entity's id
    op.execute(
        "UPDATE external_ref SET revsync_id = canonical_id "
        "WHERE link_rule IN ('created', 'external_id')"
    )


def downgrade() -> None:
    with op.batch_alter_table('error_ledger', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.drop_column('revsync_id')
