"""canonical free-text columns as TEXT: a value longer than a target's field limit is a
write error there, never a reason to lose the record in the store

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table → (column, the length it had)
COLUMNS: dict[str, tuple[tuple[str, int], ...]] = {
    'account': (('name', 255), ('website', 255), ('billing_street', 255), ('billing_city', 80),
                ('billing_state', 80), ('billing_postal_code', 20)),
    'contact': (('first_name', 80), ('last_name', 120), ('title', 255)),
    'opportunity': (('name', 255),),
}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns:
                batch_op.alter_column(column, existing_type=sa.String(length=length), type_=sa.Text(),
                                      existing_nullable=True)


def downgrade() -> None:
    # values longer than the old limits are cut to fit
    for table, columns in COLUMNS.items():
        for column, length in columns:
            op.execute(sa.text(f'UPDATE {table} SET {column} = substr({column}, 1, {length}) '
                               f'WHERE length({column}) > {length}'))
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, length in columns:
                batch_op.alter_column(column, existing_type=sa.Text(), type_=sa.String(length=length),
                                      existing_nullable=True)
