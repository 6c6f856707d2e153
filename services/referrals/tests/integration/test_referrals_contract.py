"""raise_referral parses its request through the shared contract (pont_shared.contract.rpc.referrals): the real
service container, a request sent to it directly over RabbitMQ, its PostgreSQL database."""
from __future__ import annotations

import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import create_engine, text

from pont_shared.contract.errors import Invalid
from pont_shared.identity import make_upn
from pont_shared.testing import signed
from referrals.service import ReferralsService

pytestmark = pytest.mark.integration

STAFF = {"sub": "staff1", "org": "school:6612001", "roles": ["school_staff"]}
REFERRAL = {"child": {"upn": make_upn(77), "given_name": "Ffion", "family_name": "Jones",
                      "date_of_birth": "2015-04-12"},
            "to_org": "health:cardiff-vale", "service": "school_nursing", "reason": "sleep", "details": "tired",
            "urgency": "routine", "share": ["contact"]}


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return {table: db.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608 (fixed names)
                    for table in ("referrals", "outbox", "idempotency_keys")}
    finally:
        engine.dispose()


def test_a_malformed_request_is_refused_naming_each_field_and_changes_nothing(
        start_service, make_settings, postgres_url, service_name, broker_url):
    start_service(ReferralsService, make_settings("referrals", postgres_url), name=service_name)
    malformed = {**REFERRAL, "urgency": "whenever", "child": {**REFERRAL["child"], "upn": "X1"},
                 "sharre": ["contact"], "caller": signed(STAFF), "idempotency_key": "k-1"}

    with ServiceRpcProxy(service_name, {"AMQP_URI": broker_url}) as referrals:
        with pytest.raises(Invalid) as refused:
            referrals.raise_referral(malformed)
        listed = referrals.list_referrals(signed(STAFF))

    assert sorted(error["field"] for error in refused.value.errors) == ["child.upn", "sharre", "urgency"]
    assert "whenever" not in str(refused.value.errors)
    assert listed == [] and counts(postgres_url) == {"referrals": 0, "outbox": 0, "idempotency_keys": 0}
