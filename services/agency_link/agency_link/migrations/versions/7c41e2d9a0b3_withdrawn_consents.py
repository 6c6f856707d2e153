"""withdrawn_consents: consents withdrawn that named this agency, so a copy arriving later is restricted too

Revision ID: 7c41e2d9a0b3
Revises: 1f2d08a4bb19
Create Date: 2026-12-01 15:45:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c41e2d9a0b3"
down_revision: str | Sequence[str] | None = "1f2d08a4bb19"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "withdrawn_consents",
        sa.Column("consent_id", sa.String(length=120), nullable=False),
        sa.Column("child_ref", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("withdrawn_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawn_consents_child_ref"), ["child_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawn_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawn_consents_child_ref"))
    op.drop_table("withdrawn_consents")
