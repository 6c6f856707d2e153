"""Loads and saves the agency's copies, and the withdrawals they must honour, in its own database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from pont_shared.messaging.db import insert_once

from .domain import AgencyCopy
from .orm import disclosures, withdrawn_consents

_FIELDS = ("disclosure_id", "subject_kind", "subject_id", "child_ref", "from_org", "purpose", "basis", "basis_ref",
           "content", "received_at", "status", "restricted_at", "restriction", "decided_by", "decided_at",
           "reason_code", "note", "history")

# on every disclosure's path, built once (a statement's building can cost more CPU than its execution)
_LOCK_CHILD = text("SELECT pg_advisory_xact_lock(hashtext(:ref))")
_WITHDRAWALS_OF = select(withdrawn_consents.c.consent_id, withdrawn_consents.c.action).where(
    withdrawn_consents.c.child_ref == bindparam("ref"))


def _load(row) -> AgencyCopy:
    return AgencyCopy(**{name: row[name] for name in _FIELDS})


class CopyRepository:
    def __init__(self, session: Session):
        self.session = session

    def add_once(self, copy: AgencyCopy) -> bool:
        """Keep the copy unless one of the same disclosure is kept already; whether it was kept."""
        row = {name: getattr(copy, name) for name in _FIELDS}
        return self.session.execute(insert_once(self.session, disclosures), row).rowcount == 1

    def latest_for(self, subject_kind: str, subject_id: str) -> AgencyCopy | None:
        row = self.session.execute(select(disclosures).where(
            disclosures.c.subject_kind == subject_kind, disclosures.c.subject_id == subject_id,
        ).order_by(disclosures.c.received_at.desc()).limit(1).with_for_update()).mappings().first()
        return _load(row) if row else None

    def of_kind(self, subject_kind: str | None) -> list[AgencyCopy]:
        query = select(disclosures).order_by(disclosures.c.received_at)
        if subject_kind:
            query = query.where(disclosures.c.subject_kind == subject_kind)
        return [_load(row) for row in self.session.execute(query).mappings().all()]

    def of_child(self, child_ref: str) -> list[AgencyCopy]:
        rows = self.session.execute(
            select(disclosures).where(disclosures.c.child_ref == child_ref).with_for_update()).mappings().all()
        return [_load(row) for row in rows]

    def save(self, copy: AgencyCopy) -> None:
        values = {n: getattr(copy, n) for n in _FIELDS if n != "disclosure_id"}
        self.session.execute(
            update(disclosures).where(disclosures.c.disclosure_id == copy.disclosure_id).values(**values))

    def lock_child(self, child_ref: str) -> None:
        """Until commit, one transaction at a time changes this child's copies or withdrawals: a
        disclosure and a withdrawal handled at once would otherwise each miss the other's row."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(_LOCK_CHILD, {"ref": child_ref})

    def withdrawals_of(self, child_ref: str) -> dict[str, str]:
        """{consent_id: action} of the child's consents withdrawn that named this agency."""
        rows = self.session.execute(_WITHDRAWALS_OF, {"ref": child_ref}).all()
        return {row.consent_id: row.action for row in rows}

    def record_withdrawal(self, consent_id: str, child_ref: str, action: str, at: datetime) -> None:
        """Once per consent; an erase outranks an earlier restrict."""
        found = self.session.execute(select(withdrawn_consents.c.action).where(
            withdrawn_consents.c.consent_id == consent_id).with_for_update()).first()
        if found is None:
            self.session.execute(insert(withdrawn_consents).values(
                consent_id=consent_id, child_ref=child_ref, action=action, withdrawn_at=at))
        elif action == "erase" and found.action != "erase":
            self.session.execute(update(withdrawn_consents).where(
                withdrawn_consents.c.consent_id == consent_id).values(action="erase"))
