"""raw hash of each record as last read; when a cursor's last read started

Revision ID: 0010
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.store

revision: str = '0010'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sync_cursor', schema=None) as batch_op:
        batch_op.add_column(sa.Column('read_at', sync.store.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_cursor', schema=None) as batch_op:
        batch_op.drop_column('read_at')
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.drop_column('raw_hash')
