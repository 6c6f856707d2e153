"""A disclosure and the withdrawal of the consent it rests on, handled at the same moment on
PostgreSQL: the copy still ends restricted (neither transaction misses the other's row)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

import eventlet
import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from agency_link import handlers
from agency_link.orm import metadata, tables
from agency_link.repository import CopyRepository
from pont_shared.contract.events import DisclosureDelivered
from pont_shared.messaging.db import make_engine
from pont_shared.messaging.uow import UnitOfWork
from pont_shared.testing import wait_until

pytestmark = pytest.mark.integration

HEALTH = "health:cardiff-vale"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_a_disclosure_handled_while_the_withdrawal_commits_arrives_restricted(postgres_url):
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    new_uow = sessionmaker(engine, expire_on_commit=False)
    child, consent_id = f"c_{uuid.uuid4().hex}", str(uuid.uuid4())
    event = DisclosureDelivered(
        disclosure_id=str(uuid.uuid4()), child_ref=child, to_org=HEALTH, from_org="school:6612001",
        purpose="referral", subject_kind="referral", subject_id=str(uuid.uuid4()), basis="consent",
        basis_ref=consent_id, content={"categories": {"contact": {"given_name": "Ffion"}}})
    try:
        # the withdrawal's transaction, as `on_consent_withdrawn` runs it, not yet committed
        withdrawal = UnitOfWork(new_uow, tables, source="/pont/agency_link")
        with withdrawal:
            repo = CopyRepository(withdrawal.session)
            repo.lock_child(child)
            repo.record_withdrawal(consent_id, child, "restrict", NOW)
            assert repo.of_child(child) == []

            delivery = eventlet.spawn(handlers.store_disclosure, UnitOfWork(new_uow, tables, source="/pont/x"),
                                      event, HEALTH, NOW)
            # until it waits for the withdrawal's transaction (or, had it not waited, has finished)
            wait_until(lambda: delivery.dead or waiting_for_a_lock(engine), timeout=10)
            withdrawal.commit()
        delivery.wait()

        [item] = handlers.inbox(UnitOfWork(new_uow, tables, source="/pont/x"), HEALTH,
                                {"sub": "n1", "org": HEALTH, "roles": ["school_nurse"]})
        assert item.restricted and item.content is None
    finally:
        engine.dispose()


def waiting_for_a_lock(engine) -> bool:
    with engine.connect() as db:
        waiting = db.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
        return waiting.scalar() > 0
