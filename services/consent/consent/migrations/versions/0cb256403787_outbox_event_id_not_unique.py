"""outbox event_id not unique

Revision ID: 0cb256403787
Revises: 0672b1b90800
Create Date: 2026-11-23 19:00:00

"""
from collections.abc import Sequence

from alembic import op

from pont_shared.operations.migrations import drop_outbox_event_id_unique, restore_outbox_event_id_unique

revision: str = "0cb256403787"
down_revision: str | Sequence[str] | None = "0672b1b90800"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_event_id_unique(op)


def downgrade() -> None:
    restore_outbox_event_id_unique(op)
