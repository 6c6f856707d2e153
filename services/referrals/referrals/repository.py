"""Loads and saves `Referral` aggregates in referrals' own database."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from .domain import OPEN_STATUSES, Referral, Step
from .orm import referral_steps, referrals

_FIELDS = ("id", "child_ref", "from_org", "to_org", "service", "urgency", "reason", "details", "child", "share",
           "information", "basis", "justification", "raised_by", "raised_at", "raised_by_roles", "status", "deadline",
           "overdue_at", "disclosure_id", "shared_categories")

# The statements on every referral's path, built once: building a statement of twenty values
# took more of the client's CPU than executing it (measured: 440 against 120 µs).
_BY_ID = select(referrals).where(referrals.c.id == bindparam("b_id"))
_BY_ID_FOR_UPDATE = _BY_ID.with_for_update()
_STEPS_OF = select(referral_steps).where(referral_steps.c.referral_id == bindparam("b_id")) \
    .order_by(referral_steps.c.seq)
_INSERT = insert(referrals)
_UPDATE = update(referrals).where(referrals.c.id == bindparam("b_id"))
_UPDATE_IF_STATUS = _UPDATE.where(referrals.c.status == bindparam("b_status"))
_INSERT_STEP = insert(referral_steps)


class ReferralRepository:
    """The referrals table and its chronology, through one Session."""

    def __init__(self, session: Session):
        self.session = session
        self._saved_steps: dict[str, int] = {}

    def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        query = _BY_ID_FOR_UPDATE if for_update else _BY_ID
        row = self.session.execute(query, {"b_id": referral_id}).mappings().first()
        return self._load(row) if row else None

    def _load(self, row) -> Referral:
        referral = Referral(**{name: _aware(row[name]) for name in _FIELDS})
        steps = self.session.execute(_STEPS_OF, {"b_id": referral.id}).mappings().all()
        referral.history = [Step(s["status"], _aware(s["at"]), s["by"], s["code"]) for s in steps]
        self._saved_steps[referral.id] = len(referral.history)
        return referral

    def find_open(self, from_org: str, child_ref: str, service: str) -> Referral | None:
        row = self.session.execute(select(referrals).where(
            referrals.c.from_org == from_org, referrals.c.child_ref == child_ref, referrals.c.service == service,
            referrals.c.status.in_(OPEN_STATUSES))).mappings().first()
        return self._load(row) if row else None

    def held_for(self, child_ref: str, to_org: str) -> list[Referral]:
        rows = self.session.execute(select(referrals).where(
            referrals.c.child_ref == child_ref, referrals.c.to_org == to_org,
            referrals.c.status == "awaiting_consent").order_by(referrals.c.raised_at).with_for_update()
        ).mappings().all()
        return [self._load(row) for row in rows]

    def due_by(self, now) -> list[Referral]:
        rows = self.session.execute(select(referrals).where(
            referrals.c.status == "sent", referrals.c.overdue_at.is_(None), referrals.c.deadline < now,
        ).with_for_update(skip_locked=True)).mappings().all()
        return [self._load(row) for row in rows]

    def undecided_before(self, cutoff, limit: int = 100) -> list[str]:
        """Referrals committed but never decided (awaiting consent, nothing in their chronology) before `cutoff`."""
        has_step = select(referral_steps.c.id).where(referral_steps.c.referral_id == referrals.c.id).exists()
        return list(self.session.execute(select(referrals.c.id).where(
            referrals.c.status == "awaiting_consent", referrals.c.raised_at < cutoff, ~has_step,
        ).order_by(referrals.c.raised_at).limit(limit)).scalars())

    def list_for(self, from_org: str, status: str | None = None, child_ref: str | None = None) -> list[Referral]:
        query = select(referrals).where(referrals.c.from_org == from_org)
        if status:
            query = query.where(referrals.c.status == status)
        if child_ref:
            query = query.where(referrals.c.child_ref == child_ref)
        rows = self.session.execute(query.order_by(referrals.c.raised_at)).mappings().all()
        return [self._load(row) for row in rows]

    def children_of(self, from_org: str, child_ref: str | None = None) -> list[dict]:
        """The pupils `from_org` referred, one row per referral, oldest first: child_ref, child, raised_at."""
        query = select(referrals.c.child_ref, referrals.c.child, referrals.c.raised_at).where(
            referrals.c.from_org == from_org)
        if child_ref:
            query = query.where(referrals.c.child_ref == child_ref)
        return [dict(row) for row in self.session.execute(query.order_by(referrals.c.raised_at)).mappings().all()]

    def open_of(self, from_org: str, child_refs: list[str]) -> list[dict]:
        """The open referrals `from_org` raised for these children: child_ref, service, to_org, status, raised_at."""
        columns = (referrals.c.child_ref, referrals.c.service, referrals.c.to_org, referrals.c.status,
                   referrals.c.raised_at)
        rows = self.session.execute(select(*columns).where(
            referrals.c.from_org == from_org, referrals.c.child_ref.in_(child_refs),
            referrals.c.status.in_(OPEN_STATUSES)).order_by(referrals.c.raised_at, referrals.c.id)).mappings().all()
        return [dict(row) for row in rows]

    def counts_by_status(self) -> dict[str, int]:
        rows = self.session.execute(select(referrals.c.status, func.count()).group_by(referrals.c.status)).all()
        return {status: count for status, count in rows}

    def add(self, referral: Referral) -> None:
        self.session.execute(_INSERT, self._values(referral))
        self._saved_steps[referral.id] = 0
        self._save_steps(referral)

    def save(self, referral: Referral, *, if_status: str | None = None) -> bool:
        """Write the referral and its new steps; with `if_status`, only if its stored status is that
        (read as the row is locked by the write): whether it was written."""
        values = self._values(referral)
        values["b_id"] = values.pop("id")
        statement = _UPDATE
        if if_status is not None:
            statement, values["b_status"] = _UPDATE_IF_STATUS, if_status
        if self.session.execute(statement, values).rowcount != 1:
            return False
        self._save_steps(referral)
        return True

    def _values(self, referral: Referral) -> dict:
        return {name: getattr(referral, name) for name in _FIELDS}

    def _save_steps(self, referral: Referral) -> None:
        saved = self._saved_steps.get(referral.id, 0)
        for seq, step in enumerate(referral.history[saved:], start=saved):
            self.session.execute(_INSERT_STEP, {"referral_id": referral.id, "seq": seq, "status": step.status,
                                                "at": step.at, "by": step.by, "code": step.code})
        self._saved_steps[referral.id] = len(referral.history)


def _aware(value):
    """SQLite (the embedded default store) drops the zone of stored times; they were written in UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
