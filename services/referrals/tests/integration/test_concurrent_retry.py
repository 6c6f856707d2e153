"""Two attempts with one Idempotency-Key at once, on PostgreSQL (on SQLite, BEGIN IMMEDIATE serialises them).

Seen in the fault suite after a broker outage: a client retried while its first request, queued
during the outage, was being handled. The first committed just before the retry's insert of the
referral, which the open-referral index refused; the retry must answer
with the replay, not 409. And a retry that records consent's answer while the first attempt is
still asking: the first must find it recorded, not record its own as well.
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from pont_shared.contract.rpc.referrals import RaiseReferral
from pont_shared.identity import make_upn
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.uow import UnitOfWork
from referrals import handlers
from referrals.orm import metadata, referral_steps, tables

pytestmark = pytest.mark.integration

STAFF = {"sub": "t1", "org": "school:1", "roles": ["school_staff"]}


@pytest.fixture
def engine(postgres_url):
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def raising(engine, upn: int, key: str):
    """`attempt(consent)`: raise one referral (always the same request, under `key`) as referrals does."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    command = RaiseReferral(
        child={"upn": make_upn(upn), "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
        to_org="health:1", service="school_nursing", reason="low mood", details="withdrawn", urgency="urgent",
        share=["contact"], caller=STAFF, idempotency_key=key)

    def attempt(consent) -> dict:
        return handlers.raise_referral(UnitOfWork(sessions, tables, source="/pont/referrals"), command,
                                       consent=consent, clock=lambda: datetime.now(UTC),
                                       child_ref_secret="integration-test-key").model_dump()
    return attempt


class AllowsContact:
    def share(self, request):
        return {"decisions": [{"category": c, "allowed": c == "contact", "basis": "consent" if c == "contact" else None,
                               "basis_ref": "consent-1" if c == "contact" else None, "reason": ""}
                              for c in request["categories"]],
                "disclosure_id": f"d-{request['idempotency_key']}", "flagged_for_review": False}


def test_a_retry_whose_first_attempt_commits_just_before_the_retrys_insert_is_a_replay(engine, monkeypatch):
    attempt = raising(engine, 4242, "k1")
    add, first = handlers.ReferralRepository.add, {}

    def first_attempt_commits_meanwhile(repo, *args):
        monkeypatch.setattr(handlers.ReferralRepository, "add", add)
        first.update(attempt(AllowsContact()))   # its own connection and transaction, committed before we insert
        return add(repo, *args)

    monkeypatch.setattr(handlers.ReferralRepository, "add", first_attempt_commits_meanwhile)
    second = attempt(AllowsContact())
    with UnitOfWork(sessionmaker(engine), tables, source="/pont/referrals") as uow:
        raised = handlers.ReferralRepository(uow.session).list_for(STAFF["org"])

    assert second["id"] == first["id"] and second["status"] == "sent"
    assert len(raised) == 1


class DeniesAll:
    def share(self, request):
        return {"decisions": [{"category": c, "allowed": False, "basis": None, "basis_ref": None,
                               "reason": "no consent"} for c in request["categories"]],
                "disclosure_id": None, "flagged_for_review": False}


class RetriedWhileAsked:
    """Answers as `answer` does; while the first question is asked, the client's retry (same key) is
    carried out in full, so its answer is recorded before the first attempt records its own."""

    def __init__(self, answer, retry):
        self.answer, self.retry, self.retried = answer, retry, None

    def share(self, request):
        if self.retried is None:
            self.retried = self.retry()
        return self.answer.share(request)


@pytest.mark.parametrize(("answer", "status", "event"), [
    (AllowsContact(), "sent", "pont.disclosure.delivered.v1"),       # the first write finds it sent
    (DeniesAll(), "awaiting_consent", "pont.referral.held.v1"),     # the first write finds its first step taken
])
def test_an_answer_the_retry_recorded_while_the_first_attempt_asked_is_recorded_once(engine, answer, status, event):
    attempt = raising(engine, 4243, "k2")
    consent = RetriedWhileAsked(answer, retry=lambda: attempt(answer))

    first = attempt(consent)
    with engine.connect() as db:
        steps = db.execute(select(referral_steps.c.status)).scalars().all()
        emitted = db.execute(select(tables.outbox.c.event_type)).scalars().all()

    assert consent.retried["id"] == first["id"]
    assert first["status"] == consent.retried["status"] == status
    assert steps == [status]
    assert emitted.count(event) == 1
