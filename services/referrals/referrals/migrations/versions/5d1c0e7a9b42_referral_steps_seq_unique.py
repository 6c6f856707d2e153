"""referral steps: one step per place in a referral's chronology

Revision ID: 5d1c0e7a9b42
Revises: 082a84070801
Create Date: 2026-12-05 21:30:00

Recording consent's answer to a referral just raised writes it without reading the referral
back; two answers recorded at once (a retry's, say) would otherwise both add the first step.
The unique index refuses the second, which then reads the referral and finds it decided.
It also serves what the index on `referral_id` alone did.
"""
from collections.abc import Sequence

from alembic import op

revision: str = "5d1c0e7a9b42"
down_revision: str | Sequence[str] | None = "082a84070801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("referral_steps", schema=None) as batch_op:
        batch_op.create_index("ux_referral_steps_seq", ["referral_id", "seq"], unique=True)
        batch_op.drop_index("ix_referral_steps_referral_id")


def downgrade() -> None:
    with op.batch_alter_table("referral_steps", schema=None) as batch_op:
        batch_op.create_index("ix_referral_steps_referral_id", ["referral_id"], unique=False)
        batch_op.drop_index("ux_referral_steps_seq")
