"""outbox retry columns

Revision ID: ec9f09aff140
Revises: 33663c2710e5
Create Date: 2026-11-23 11:00:58.952900

"""
from collections.abc import Sequence

from alembic import op

from pont_shared.operations.migrations import add_outbox_retry_columns, drop_outbox_retry_columns

# revision identifiers, used by Alembic.
revision: str = 'ec9f09aff140'
down_revision: str | Sequence[str] | None = '33663c2710e5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_retry_columns(op)


def downgrade() -> None:
    drop_outbox_retry_columns(op)
