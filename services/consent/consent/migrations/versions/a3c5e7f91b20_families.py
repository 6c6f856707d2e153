"""families: invitations, links, disclosures kept from them, consent requests, preferences and notices

Revision ID: a3c5e7f91b20
Revises: 1f6678394e4d
Create Date: 2026-12-05 16:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pont_shared.messaging.db import UtcDateTime

revision: str = "a3c5e7f91b20"
down_revision: str | Sequence[str] | None = "1f6678394e4d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consents") as batch:
        batch.add_column(sa.Column("withdrawal_evidence", sa.String(20), nullable=True))
    op.create_table(
        "family_invites",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("school", sa.String(100), nullable=False),
        sa.Column("child_ref", sa.String(64), nullable=False),
        sa.Column("given_name", sa.String(200), nullable=False),
        sa.Column("relationship", sa.String(20), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("competence_assessed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("invited_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("redeemed_at", UtcDateTime(), nullable=True),
        sa.Column("redeemed_by", sa.String(200), nullable=True),
    )
    op.create_table(
        "family_links",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("school", sa.String(100), nullable=False),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("child_ref", sa.String(64), nullable=False),
        sa.Column("given_name", sa.String(200), nullable=False),
        sa.Column("relationship", sa.String(20), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("competence_assessed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("invite_id", sa.String(36), nullable=False),
        sa.Column("linked_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("school", "member", "child_ref", name="uq_family_links_member_child"),
    )
    op.create_table(
        "family_exemptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("disclosure_id", sa.String(36), nullable=False, unique=True),
        sa.Column("child_ref", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("review_on", sa.Date(), nullable=False),
        sa.Column("marked_by", sa.String(200), nullable=False),
        sa.Column("marked_by_org", sa.String(100), nullable=False),
        sa.Column("marked_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_family_exemptions_child_ref", "family_exemptions", ["child_ref"])
    op.create_table(
        "family_preferences",
        sa.Column("school", sa.String(100), primary_key=True),
        sa.Column("member", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "session_services",
        sa.Column("session_id", sa.String(36), primary_key=True),
        sa.Column("provider_org", sa.String(100), nullable=False),
        sa.Column("service", sa.String(40), nullable=False),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("school", sa.String(100), nullable=False),
        sa.Column("member", sa.String(200), nullable=False),
        sa.Column("child_ref", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("about", sa.String(100), nullable=True),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(200), nullable=True),
    )
    op.create_index("ix_notices_sent_at", "notices", ["sent_at"])
    op.create_table(
        "consent_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("child_ref", sa.String(64), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("asked_by", sa.String(200), nullable=False),
        sa.Column("asked_by_org", sa.String(100), nullable=False),
        sa.Column("referral_id", sa.String(36), nullable=True, unique=True),
        sa.Column("asked_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("answered_by", sa.String(200), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("consent_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_consent_requests_child_ref", "consent_requests", ["child_ref"])


def downgrade() -> None:
    op.drop_index("ix_consent_requests_child_ref", table_name="consent_requests")
    op.drop_table("consent_requests")
    op.drop_index("ix_notices_sent_at", table_name="notices")
    op.drop_index("ix_family_exemptions_child_ref", table_name="family_exemptions")
    for name in ("notices", "session_services", "family_preferences", "family_exemptions", "family_links",
                 "family_invites"):
        op.drop_table(name)
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("withdrawal_evidence")
