"""send_requested_at/by on transitions: a send is committed before consent is asked

Revision ID: 8c4d2e6f1a37
Revises: 5d0e7c2a91f4
Create Date: 2026-12-04 19:25:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c4d2e6f1a37"
down_revision: str | Sequence[str] | None = "5d0e7c2a91f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("send_requested_by", sa.JSON(), nullable=True))
        batch_op.create_index("ix_transitions_send_requested_at", ["send_requested_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_transitions_send_requested_at")
        batch_op.drop_column("send_requested_by")
        batch_op.drop_column("send_requested_at")
