"""outbox event_id not unique

Revision ID: b1fe6091a09c
Revises: ec9f09aff140
Create Date: 2026-11-23 19:00:00

"""
from collections.abc import Sequence

from alembic import op

from pont_shared.operations.migrations import drop_outbox_event_id_unique, restore_outbox_event_id_unique

revision: str = "b1fe6091a09c"
down_revision: str | Sequence[str] | None = "ec9f09aff140"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_event_id_unique(op)


def downgrade() -> None:
    restore_outbox_event_id_unique(op)
