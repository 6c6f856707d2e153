"""agreements: approval by every party, revocation

Revision ID: 7d41c0a2e9b5
Revises: 0cb256403787
Create Date: 2026-12-04 15:45:00

Agreements recorded before this revision were in force on one administrator's word; they
stay in force, recorded as approved by every party (`by`: "before-approvals").
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pont_shared.messaging.db import UtcDateTime

revision: str = "7d41c0a2e9b5"
down_revision: str | Sequence[str] | None = "0cb256403787"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("proposed_by_org", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("approvals", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("revoked_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("revoked_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("revocation_reason", sa.Text(), nullable=True))
    agreements = sa.table("agreements", sa.column("id", sa.String), sa.column("parties", sa.JSON),
                          sa.column("approvals", sa.JSON), sa.column("created_at", UtcDateTime()))
    connection = op.get_bind()
    for row in connection.execute(sa.select(agreements.c.id, agreements.c.parties, agreements.c.created_at)).all():
        approvals = [{"org": org, "by": "before-approvals", "at": row.created_at.isoformat()} for org in row.parties]
        connection.execute(agreements.update().where(agreements.c.id == row.id).values(approvals=approvals))


def downgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        for name in ("revocation_reason", "revoked_by", "revoked_at", "approvals", "proposed_by_org"):
            batch.drop_column(name)
