"""Referrals: the status machine, its chronology and response deadlines. Plain Python."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

AWAITING_CONSENT = "awaiting_consent"
SENT = "sent"
ACCEPTED = "accepted"
DECLINED = "declined"
CLOSED = "closed"
WITHDRAWN = "withdrawn"

STATUSES = (AWAITING_CONSENT, SENT, ACCEPTED, DECLINED, CLOSED, WITHDRAWN)
OPEN_STATUSES = (AWAITING_CONSENT, SENT, ACCEPTED)

SERVICES = ("school_nursing", "camhs", "social_care", "youth_work", "education_welfare", "families_first")
URGENCIES = ("routine", "urgent", "safeguarding")

SCHOOL_ZONE = ZoneInfo("Europe/London")

# working (school) days the recipient has to acknowledge a referral, by urgency
RESPONSE_WORKING_DAYS = {"safeguarding": 1, "urgent": 2, "routine": 10}

# what an agency may do next, from each status
_AGENCY_STEPS = {
    ACCEPTED: (SENT,),
    DECLINED: (SENT, ACCEPTED),
    CLOSED: (ACCEPTED, DECLINED),
}


class ReferralRuleBroken(Exception):
    """A step the status machine does not allow; args[0] says which field and why."""

    def __init__(self, field_name: str, message: str):
        super().__init__(field_name, message)
        self.field = field_name
        self.message = message


def add_working_days(start: datetime, days: int, holidays: frozenset[date] = frozenset()) -> datetime:
    """`start` moved on by `days` school days (Monday to Friday, not a holiday), same time of day.

    Days are counted in Wales (Europe/London), whatever zone `start` is in, and the result is
    returned in `start`'s zone: 23:30 UTC on a summer Sunday is already Monday at school.
    """
    moved = start.astimezone(SCHOOL_ZONE)
    remaining = days
    while remaining > 0:
        moved += timedelta(days=1)
        if moved.weekday() < 5 and moved.date() not in holidays:
            remaining -= 1
    return moved.astimezone(start.tzinfo)


def response_deadline(sent_at: datetime, urgency: str, holidays: frozenset[date] = frozenset()) -> datetime:
    """By when the recipient must acknowledge: next school day, 2 or 10 school days."""
    return add_working_days(sent_at, RESPONSE_WORKING_DAYS[urgency], holidays)


@dataclass
class Step:
    """One line of a referral's chronology."""

    status: str
    at: datetime
    by: str
    code: str | None = None

    def as_dict(self) -> dict:
        line = {"status": self.status, "at": self.at, "by": self.by}
        if self.code:
            line["code"] = self.code
        return line


@dataclass
class Referral:
    """A school's request that another organisation help a child."""

    id: str
    child_ref: str
    from_org: str
    to_org: str
    service: str
    urgency: str
    reason: str
    details: str
    child: dict
    share: list[str]
    information: dict
    basis: str
    justification: str | None
    raised_by: str
    raised_at: datetime
    raised_by_roles: list[str] = field(default_factory=list)
    status: str = AWAITING_CONSENT
    history: list[Step] = field(default_factory=list)
    deadline: datetime | None = None
    overdue_at: datetime | None = None
    disclosure_id: str | None = None
    shared_categories: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def _move(self, status: str, at: datetime, by: str, code: str | None = None) -> None:
        self.status = status
        self.history.append(Step(status, at, by, code))

    def hold(self, at: datetime, by: str) -> None:
        """No category may be shared yet: wait for consent."""
        if self.status != AWAITING_CONSENT or self.history:
            raise ReferralRuleBroken("status", f"a referral that is {self.status} cannot be held")
        self._move(AWAITING_CONSENT, at, by)

    def send(self, at: datetime, by: str, *, disclosure_id: str, categories: list[str],
             holidays: frozenset[date] = frozenset()) -> None:
        """Sharing was allowed for `categories`: the referral goes to the recipient."""
        if self.status != AWAITING_CONSENT:
            raise ReferralRuleBroken("status", f"a referral that is {self.status} cannot be sent")
        self.disclosure_id = disclosure_id
        self.shared_categories = list(categories)
        self.deadline = response_deadline(at, self.urgency, holidays)
        self._move(SENT, at, by)

    def record_agency_step(self, status: str, at: datetime, by: str, code: str | None = None) -> None:
        """The recipient accepted, declined or closed it."""
        allowed_from = _AGENCY_STEPS.get(status)
        if allowed_from is None:
            raise ReferralRuleBroken("decision", f"{status} is not an agency decision")
        if self.status not in allowed_from:
            raise ReferralRuleBroken("status", f"a referral that is {self.status} cannot become {status}")
        self._move(status, at, by, code)

    def withdraw(self, at: datetime, by: str) -> None:
        """The referring school no longer wants it."""
        if not self.is_open:
            raise ReferralRuleBroken("status", f"a referral that is {self.status} cannot be withdrawn")
        self._move(WITHDRAWN, at, by)

    def is_overdue(self, now: datetime) -> bool:
        """Sent, not yet acknowledged, deadline passed, and not already reported."""
        return self.status == SENT and self.deadline is not None and self.overdue_at is None and now > self.deadline

    def mark_overdue(self, now: datetime) -> None:
        self.overdue_at = now

    def visible_to(self, org: str) -> bool:
        return org in (self.from_org, self.to_org)

    def disclosure_content(self, allowed: list[str]) -> dict:
        """What the recipient receives: the referral itself and ONLY the allowed categories' data."""
        categories: dict = {}
        for category in allowed:
            if category == "contact":
                categories["contact"] = {**self.child, **(self.information.get("contact") or {})}
            elif category in self.information:
                categories[category] = self.information[category]
        return {
            "referral": {"service": self.service, "urgency": self.urgency, "reason": self.reason,
                         "details": self.details},
            "categories": categories,
        }


def check_basis(basis: str, justification: str | None, roles: set[str] | frozenset[str]) -> None:
    """Sharing without consent is for a DSL, with a written justification."""
    if basis == "safeguarding":
        if "dsl" not in roles:
            raise PermissionError("sharing on a safeguarding basis needs the dsl role")
        if not (justification or "").strip():
            raise ReferralRuleBroken("justification", "a safeguarding basis needs a written justification")


def _folded(text: str) -> str:
    """Lower case without accents, so `sian` finds Siân and `WYN` finds Ŵyn."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def name_matches(child: dict, query: str) -> bool:
    """Every word of the query begins one of the pupil's names (`ann jon` finds Ann Jones; `jo` finds Jo-Ann)."""
    names = _folded(f"{child.get('given_name', '')} {child.get('family_name', '')}")
    words = [w for w in re.split(r"[\s'’-]+", names) if w]
    wanted = [w for w in re.split(r"[\s'’-]+", _folded(query)) if w]
    return bool(wanted) and all(any(name.startswith(w) for name in words) for w in wanted)
