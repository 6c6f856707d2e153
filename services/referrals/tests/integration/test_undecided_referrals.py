"""A referral raised while consent is down is committed undecided; the sweep decides it once consent is back."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from consent.service import ConsentService
from pont_shared.identity import make_upn
from pont_shared.messaging.rpc import RpcProxy
from pont_shared.testing import agreement_in_force, fresh_database, signed, wait_until
from referrals.service import ReferralsService

pytestmark = pytest.mark.integration

SCHOOL, HEALTH = "school:6612001", "health:cardiff-vale"
STAFF = {"sub": "staff1", "org": SCHOOL, "roles": ["school_staff"]}


def test_a_referral_raised_while_consent_is_down_is_sent_by_the_sweep_when_consent_returns(
        start_service, make_settings, postgres_url, service_name, broker_url):
    consent_name = f"consent_{uuid.uuid4().hex[:8]}"
    with_consent = {"AMQP_URI": broker_url}
    consent_settings = make_settings("consent", postgres_url)
    consent = start_service(ConsentService, consent_settings, name=consent_name)
    upn = make_upn(uuid.uuid4().int % 10**9)
    with ServiceRpcProxy(consent_name, with_consent) as rpc:
        agreement_in_force(rpc, {"parties": [SCHOOL, HEALTH], "purposes": ["referral"], "categories": ["contact"],
                                 "valid_from": str(date.today() - timedelta(days=1)),
                                 "valid_to": str(date.today() + timedelta(days=30))})
        rpc.record_consent({"child": {"upn": upn}, "given_by": {"name": "Parent", "relationship": "parent"},
                            "recipients": [HEALTH], "purposes": ["referral"], "categories": ["contact"],
                            "evidence": "written"}, signed(STAFF))
    consent.stop()   # its durable request queue stays: questions wait there, unanswered

    with start_referrals_pointing_at(consent_name, start_service, make_settings, service_name) as referrals:
        with pytest.raises(RemoteError):   # the raiser's question to consent ran out of time
            referrals.raise_referral({
                "child": {"upn": upn, "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
                "to_org": HEALTH, "service": "school_nursing", "reason": "sleep", "details": "tired",
                "urgency": "routine", "share": ["contact"], "caller": signed(STAFF)})
        [undecided] = referrals.list_referrals(signed(STAFF))
        assert undecided["status"] == "awaiting_consent" and undecided["history"] == []

        start_service(ConsentService, consent_settings, name=consent_name)
        sent = wait_until(lambda: (r := referrals.get(undecided["id"], signed(STAFF)))["status"] == "sent" and r,
                          timeout=30, message="the sweep sends the undecided referral")
    assert [step["status"] for step in sent["history"]] == ["sent"]
    with ServiceRpcProxy(consent_name, with_consent) as rpc:
        ledger = rpc.disclosures(sent["child_ref"], signed(STAFF))
    assert [entry["kind"] for entry in ledger].count("disclosure") == 1   # asked twice, disclosed once


class start_referrals_pointing_at:
    """Referrals whose consent is `consent_name`, with a short RPC deadline and a fast sweep; an RPC client."""

    def __init__(self, consent_name, start_service, make_settings, service_name):
        cls = type("ReferralsService", (ReferralsService,), {"consent": RpcProxy(consent_name)})
        self.database = fresh_database("pont_undecided")
        url = self.database.__enter__()
        self.container = start_service(cls, make_settings("referrals", url), name=service_name, extra_config={
            "PONT_RPC_TIMEOUT_SECONDS": 1, "PONT_REFERRALS_UNDECIDED_SECONDS": 0.2,
            "PONT_REFERRALS_UNDECIDED_AFTER_SECONDS": 0.5})
        self.rpc = ServiceRpcProxy(service_name, {"AMQP_URI": self.container.config["AMQP_URI"]})

    def __enter__(self):
        return self.rpc.__enter__()

    def __exit__(self, *exc):
        self.rpc.__exit__(*exc)
        self.container.stop()
        self.database.__exit__(*exc)
