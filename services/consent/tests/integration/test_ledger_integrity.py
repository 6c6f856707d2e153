"""The keyed ledger chain, its anchors in agency links' databases, and verification (issue #15)."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY
from sqlalchemy import select

from agency_link.service import AgencyLinkService
from consent.domain import LedgerEntry
from consent.orm import ledger, ledger_entry_from
from consent.service import ConsentService
from pont_shared.config import safe_name
from pont_shared.testing import fresh_database, signed, wait_until

from .test_consent_service import HEALTH, Consent, FakeClock

pytestmark = pytest.mark.integration

KEY = "ledger-key-for-these-tests-0123456789"


@pytest.fixture
def anchoring(start_service, make_settings, postgres_url, broker_url, service_name):
    """Consent, with one agency link (its own database, an organisation no other test uses) keeping anchors."""
    org = f"health:a{uuid.uuid4().hex[:8]}"
    link_name = f"agency_link_{safe_name(org)}"
    with fresh_database("pont_anchor") as link_url:
        start_service(AgencyLinkService, make_settings(link_name, link_url), name=link_name,
                      extra_config={"org": org})
        clock = FakeClock()
        container = start_service(
            ConsentService, make_settings(service_name, postgres_url, ledger_key=KEY, agencies=(org,)),
            name=service_name, extra_config={"PONT_CLOCK": clock.now})
        service = Consent(container, postgres_url, broker_url, clock)
        service.link_url = link_url
        yield service
        service.close()


def record_disclosures(consent: Consent, n: int) -> None:
    consent.agreement()
    given = consent.consent()
    for i in range(n):
        consent.rpc.share({**consent.ask(given["child_ref"]), "subject_kind": "referral", "subject_id": f"r{i}"})


def behind_the_applications_back(consent: Consent, *statements: str, **params) -> None:
    """What someone with the database superuser can do: switch the append-only trigger off and change rows."""
    consent.sql("ALTER TABLE disclosure_ledger DISABLE TRIGGER USER")
    try:
        for statement in statements:
            consent.sql(statement, **params)
    finally:
        consent.sql("ALTER TABLE disclosure_ledger ENABLE TRIGGER USER")


def rechain_from(consent: Consent, seq: int, key: bytes) -> None:
    """Rewrite entry `seq` (to another recipient) and re-link it and every later entry under `key`."""
    rows = consent.sql("SELECT * FROM disclosure_ledger ORDER BY seq").all()
    entries = [ledger_entry_from(row) for row in rows]
    previous: LedgerEntry | None = entries[seq - 2] if seq > 1 else None
    statements = []
    for entry in entries[seq - 1:]:
        if entry.seq == seq:
            entry = replace(entry, to_org="social_care:cardiff")
        previous = entry.chained_after(previous, key)
        statements.append((previous.seq, previous.to_org, previous.prev_hash, previous.hash))
    # hashes are unique: move the rewritten tail out of the way first, then write the new links
    consent.sql("ALTER TABLE disclosure_ledger DISABLE TRIGGER USER")
    try:
        consent.sql("UPDATE disclosure_ledger SET prev_hash = 'x' || seq, hash = 'y' || seq WHERE seq >= :seq", seq=seq)
        for s, to_org, prev_hash, hash_ in statements:
            consent.sql("UPDATE disclosure_ledger SET to_org = :to_org, prev_hash = :p, hash = :h WHERE seq = :s",
                        to_org=to_org, p=prev_hash, h=hash_, s=s)
    finally:
        consent.sql("ALTER TABLE disclosure_ledger ENABLE TRIGGER USER")


def test_a_real_ledger_verifies_intact_with_its_anchor_and_the_gauges_say_so(anchoring):
    record_disclosures(anchoring, 3)
    with entrypoint_hook(anchoring.container, "anchor_ledger") as anchor:
        head = anchor()
    assert head["seq"] == 3
    wait_until(lambda: anchoring.rpc.verify_ledger()["anchors_checked"] == 1, timeout=10,
               message="the agency link never kept the anchor")

    with entrypoint_hook(anchoring.container, "verify_ledger_on_schedule") as verify:
        result = verify()

    assert result == {"intact": True, "entries": 3, "head": head, "unkeyed_entries": 0, "anchors_checked": 1}
    assert REGISTRY.get_sample_value("pont_ledger_intact") == 1
    assert REGISTRY.get_sample_value("pont_ledger_entries_verified") == 3
    assert REGISTRY.get_sample_value("pont_ledger_last_verified_timestamp_seconds") > 0


def test_an_entry_rewritten_and_re_chained_without_the_key_is_detected(anchoring):
    """Re-chained with the development default key: not the key this ledger is kept under."""
    from pont_shared.config import DEV_LEDGER_KEY

    record_disclosures(anchoring, 4)
    rechain_from(anchoring, 2, DEV_LEDGER_KEY.encode())

    result = anchoring.rpc.verify_ledger()

    assert result["intact"] is False and result["first_broken"]["seq"] == 2
    assert "hash" in result["first_broken"]["reason"]
    assert REGISTRY.get_sample_value("pont_ledger_intact") == 0


def test_an_entry_rewritten_and_re_chained_with_a_wrong_key_is_detected(anchoring):
    record_disclosures(anchoring, 4)
    rechain_from(anchoring, 3, b"a key someone guessed")

    result = anchoring.rpc.verify_ledger()

    assert result["intact"] is False and result["first_broken"]["seq"] == 3


def test_a_dropped_tail_is_detected_through_the_agency_links_anchor(anchoring):
    record_disclosures(anchoring, 5)
    with entrypoint_hook(anchoring.container, "anchor_ledger") as anchor:
        anchor()
    wait_until(lambda: anchoring.rpc.verify_ledger()["anchors_checked"] == 1, timeout=10,
               message="the agency link never kept the anchor")

    behind_the_applications_back(anchoring, "DELETE FROM disclosure_ledger WHERE seq > 3")
    result = anchoring.rpc.verify_ledger()

    assert result["entries"] == 3 and result["intact"] is False
    assert result["first_broken"]["seq"] == 5 and "missing" in result["first_broken"]["reason"]


def test_a_tail_rebuilt_with_the_key_differs_from_the_anchor(anchoring):
    """Even with the key, a rewrite before an anchored head is caught: the anchor lives elsewhere."""
    record_disclosures(anchoring, 4)
    with entrypoint_hook(anchoring.container, "anchor_ledger") as anchor:
        anchor()
    wait_until(lambda: anchoring.rpc.verify_ledger()["anchors_checked"] == 1, timeout=10,
               message="the agency link never kept the anchor")

    rechain_from(anchoring, 2, KEY.encode())
    result = anchoring.rpc.verify_ledger()

    assert result["intact"] is False and result["first_broken"]["seq"] == 4
    assert "differs" in result["first_broken"]["reason"]


def test_the_anchor_event_carries_the_head_and_nothing_else(anchoring):
    from pont_shared.messaging.wire import WireObserver

    record_disclosures(anchoring, 2)
    watcher = WireObserver(anchoring.container.config["AMQP_URI"], bindings=[("pont.events", "pont.ledger.#")])
    try:
        with entrypoint_hook(anchoring.container, "anchor_ledger") as anchor:
            head = anchor()
        source = f"/pont/{anchoring.container.service_name}"
        seen = [e for e in watcher.wait_for(lambda events: any(e.source == source for e in events))
                if e.source == source]
    finally:
        watcher.close()

    assert set(seen[0].data) == {"seq", "hash", "at"}
    assert (seen[0].data["seq"], seen[0].data["hash"]) == (head["seq"], head["hash"])
    assert HEALTH not in str(seen[0].data)


@pytest.fixture
def least_privilege(start_service, make_settings, broker_url, service_name):
    """Consent on a database provisioned with an owner role (migrations) and a runtime role (the service)."""
    from sqlalchemy import create_engine, text

    from pont_shared.operations.roles import provision, role_names
    from pont_shared.testing import ADMIN_URL, random_name

    database = safe_name(random_name("pont_roles"))
    owner_url, app_url = provision(ADMIN_URL, "consent", database)
    try:
        clock = FakeClock()
        container = start_service(
            ConsentService, make_settings(service_name, app_url, migrate_database_url=owner_url, agencies=()),
            name=service_name, extra_config={"PONT_CLOCK": clock.now})
        service = Consent(container, app_url, broker_url, clock)  # its sql() runs as the runtime role
        yield service
        service.close()
        container.stop()
    finally:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for role in role_names(database):
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


class TestTheRuntimeRole:
    @pytest.mark.parametrize("statement", [
        "DELETE FROM disclosure_ledger",
        "UPDATE disclosure_ledger SET to_org = 'social_care:cardiff' WHERE seq = 2",
        "TRUNCATE disclosure_ledger",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE TABLE mine (id int)",
    ])
    def test_postgresql_refuses_what_the_service_does_not_need(self, least_privilege, statement):
        from sqlalchemy.exc import DBAPIError

        record_disclosures(least_privilege, 3)

        with pytest.raises(DBAPIError, match="permission denied"):
            least_privilege.sql(statement)

        assert least_privilege.sql("SELECT count(*) FROM disclosure_ledger").scalar() == 3

    def test_the_service_works_as_the_runtime_role_and_its_ledger_verifies(self, least_privilege):
        record_disclosures(least_privilege, 2)
        given = least_privilege.consent()
        least_privilege.rpc.withdraw_consent(given["id"], "parent asked", signed(
            {"sub": "s", "org": "school:6612001", "roles": ["school_staff"]}))

        assert least_privilege.sql("SELECT current_user").scalar().endswith("_app")
        result = least_privilege.rpc.verify_ledger()
        assert result["intact"] is True and result["entries"] == 3


def test_a_ledger_chained_before_the_key_still_verifies_and_keyed_entries_follow_it(postgres_url):
    """Upgrading a deployed database: its unkeyed entries are marked `sha256`, verify, and keyed ones follow."""
    import hashlib
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    import consent
    from consent.domain import GENESIS_HASH, UNKEYED, verify_chain
    from consent.orm import ledger_row
    from pont_shared.messaging.db import make_engine
    from pont_shared.operations.migrations import upgrade

    migrations = Path(consent.__file__).parent / "migrations"
    engine = make_engine(postgres_url)
    try:
        upgrade(engine, migrations, "7d41c0a2e9b5")  # the schema before the ledger key
        previous, legacy = None, []
        for seq in (1, 2):
            entry = LedgerEntry(seq=seq, id=str(uuid.uuid4()), kind="disclosure", at=datetime.now(UTC),
                                child_ref="c_" + "b" * 32, from_org="school:6612001", to_org=HEALTH,
                                purpose="referral", categories=("contact",), basis="consent", basis_ref="c1",
                                by="staff1", prev_hash=previous.hash if previous else GENESIS_HASH, chain=UNKEYED)
            body = json.dumps({"prev_hash": entry.prev_hash, **entry.content()}, sort_keys=True, separators=(",", ":"))
            previous = replace(entry, hash=hashlib.sha256(body.encode()).hexdigest())  # as the old code chained
            legacy.append(previous)
        with engine.begin() as db:
            for entry in legacy:
                row = ledger_row(entry)
                del row["chain"]
                db.execute(ledger.insert().values(**row))
        upgrade(engine, migrations)

        with engine.connect() as db:
            stored = [ledger_entry_from(r) for r in db.execute(select(ledger).order_by(ledger.c.seq))]
        assert [e.chain for e in stored] == [UNKEYED, UNKEYED]
        keyed = stored + [LedgerEntry(seq=0, id=str(uuid.uuid4()), kind="withdrawal", at=datetime.now(UTC),
                                      child_ref="c_" + "b" * 32, from_org="school:6612001", to_org=None,
                                      purpose=None, categories=(), basis="consent", basis_ref="c1",
                                      by="staff1").chained_after(stored[-1], KEY.encode())]
        result = verify_chain(keyed, KEY.encode())
        assert result.intact and result.unkeyed == 2 and result.entries == 3
    finally:
        engine.dispose()



def test_after_a_key_rotation_the_ledger_verifies_with_the_old_key_kept_and_not_without_it(
        anchoring, start_service, make_settings, postgres_url, broker_url):
    """PONT_LEDGER_KEY becomes a new key and the old one moves to PONT_LEDGER_PREVIOUS_KEYS."""
    record_disclosures(anchoring, 2)
    new_key = "the-ledger-key-after-the-rotation-0123456789"

    def consent_with(**keys) -> Consent:
        name = f"consent_rotated_{uuid.uuid4().hex[:8]}"
        container = start_service(ConsentService, make_settings(name, postgres_url, **keys), name=name)
        return Consent(container, postgres_url, broker_url, FakeClock())

    rotated = consent_with(ledger_key=new_key, ledger_previous_keys=(KEY,))
    try:
        given = rotated.consent()
        for i in range(2):
            rotated.rpc.share({**rotated.ask(given["child_ref"]), "subject_kind": "referral", "subject_id": f"n{i}"})
        result = rotated.rpc.verify_ledger()
        chains = [row.chain for row in rotated.sql("SELECT chain FROM disclosure_ledger ORDER BY seq")]
    finally:
        rotated.close()
    forgetful = consent_with(ledger_key=new_key)
    try:
        without_old = forgetful.rpc.verify_ledger()
    finally:
        forgetful.close()

    assert result["intact"] is True and result["entries"] == 4
    assert len(set(chains[:2])) == 1 and len(set(chains[2:])) == 1 and chains[0] != chains[2]
    assert without_old["intact"] is False and without_old["first_broken"] == {
        "seq": 1, "reason": "sealed with a key this service does not hold"}
