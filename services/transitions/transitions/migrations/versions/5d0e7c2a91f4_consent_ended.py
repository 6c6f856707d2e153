"""section_basis on transitions, ended_consents: withdrawal and expiry reach the records that travelled

Revision ID: 5d0e7c2a91f4
Revises: b1fe6091a09c
Create Date: 2026-12-04 16:20:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d0e7c2a91f4"
down_revision: str | Sequence[str] | None = "b1fe6091a09c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("section_basis", sa.JSON(), nullable=True))
    op.create_table(
        "ended_consents",
        sa.Column("consent_id", sa.String(length=120), nullable=False),
        sa.Column("child_ref", sa.String(length=64), nullable=False),
        sa.Column("why", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    with op.batch_alter_table("ended_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ended_consents_child_ref"), ["child_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ended_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ended_consents_child_ref"))
    op.drop_table("ended_consents")
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_column("section_basis")
