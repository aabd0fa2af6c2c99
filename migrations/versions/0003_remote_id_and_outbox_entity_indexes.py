"""indexes for lookups by remote id and for replacing an entity's pending ops

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.create_index('ix_external_ref_remote', ['remote_id', 'object_type'], unique=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_entity', ['object_type', 'canonical_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_entity')
    with op.batch_alter_table('external_ref', schema=None) as batch_op:
        batch_op.drop_index('ix_external_ref_remote')
