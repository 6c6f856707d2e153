"""outbox retry columns

Revision ID: f1075d49b90c
Revises: 6b57dfe444ae
Create Date: 2026-11-23 10:59:53.676013

"""
from collections.abc import Sequence

from alembic import op

from pont_shared.operations.migrations import add_outbox_retry_columns, drop_outbox_retry_columns

# revision identifiers, used by Alembic.
revision: str = 'f1075d49b90c'
down_revision: str | Sequence[str] | None = '6b57dfe444ae'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_retry_columns(op)


def downgrade() -> None:
    drop_outbox_retry_columns(op)
