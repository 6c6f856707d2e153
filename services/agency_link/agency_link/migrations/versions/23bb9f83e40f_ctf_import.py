"""ctf_import: the Common Transfer Files a school imported into its own store

Revision ID: 23bb9f83e40f
Revises: 355ec26dc0c8
Create Date: 2026-11-23 11:43:28.806582

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "23bb9f83e40f"
down_revision: str | Sequence[str] | None = "355ec26dc0c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """One row per pupil per imported file (same pupil + same file: one row)."""
    op.create_table(
        "imported_transfers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("child_ref", sa.String(length=64), nullable=False),
        sa.Column("source_file", sa.String(length=80), nullable=False),
        sa.Column("from_school", sa.String(length=80), nullable=False),
        sa.Column("to_school", sa.String(length=80), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("child_ref", "source_file", name="uq_imported_transfers_pupil_file"),
    )
    with op.batch_alter_table("imported_transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imported_transfers_child_ref"), ["child_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("imported_transfers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imported_transfers_child_ref"))
    op.drop_table("imported_transfers")
