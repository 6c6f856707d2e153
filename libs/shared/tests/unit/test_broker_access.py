"""The generated broker users and permissions, and the per-service URI settings."""
from __future__ import annotations

import re

import pytest

from pont_shared.config import Settings, UnsafeConfiguration
from pont_shared.contract.caller import new_signing_key, public_key_of
from pont_shared.operations import broker_access

ENV = {"PONT_AGENCIES": "health:cardiff-vale,school:6612001"}


@pytest.fixture(scope="module")
def document():
    settings = Settings.from_env("tools", ENV)
    return broker_access.definitions(settings, {u: "pw" for u in broker_access.users(settings)}, "/")


def grant(document, user, kind, exchange=None):
    if exchange is None:
        return next(p[kind] for p in document["permissions"] if p["user"] == user)
    return next(t[kind] for t in document["topic_permissions"] if t["user"] == user and t["exchange"] == exchange)


def test_one_user_per_service_and_organisation_none_an_administrator(document):
    names = {user["name"] for user in document["users"]}
    assert {"consent", "referrals", "bookings", "transitions", "gateway",
            "agency_link_health_cardiff_vale", "agency_link_school_6612001"} <= names
    assert all(user["tags"] == [] for user in document["users"])


def test_an_agency_reads_only_its_own_queues_and_its_own_disclosures(document):
    me = "agency_link_health_cardiff_vale"
    read = grant(document, me, "read")
    assert re.fullmatch(read, f"{me}.on_disclosure")
    assert not re.fullmatch(read, "agency_link_school_6612001.on_disclosure")
    assert not re.fullmatch(read, "referrals.on_consent_granted")
    assert not re.fullmatch(read, "pont.requeue.consent")
    disclosed = grant(document, me, "read", "pont.disclosed")
    assert re.fullmatch(disclosed, "health:cardiff-vale") and not re.fullmatch(disclosed, "school:6612001")
    assert not re.fullmatch(disclosed, "#")
    assert grant(document, me, "write", "pont.disclosed") == "^$"


def test_each_publisher_may_publish_only_its_own_event_types(document):
    assert re.fullmatch(grant(document, "consent", "write", "pont.events"), "pont.consent.granted.v1")
    assert not re.fullmatch(grant(document, "consent", "write", "pont.events"), "pont.referral.raised.v1")
    agency = grant(document, "agency_link_school_6612001", "write", "pont.events")
    assert re.fullmatch(agency, "pont.agency.decided.v1") and not re.fullmatch(agency, "pont.consent.withdrawn.v1")
    assert grant(document, "gateway", "write", "pont.events") == "^$"


def test_the_hash_is_rabbitmqs_salted_sha256():
    import base64
    import hashlib
    raw = base64.b64decode(broker_access.password_hash("secret"))
    assert raw[4:] == hashlib.sha256(raw[:4] + b"secret").digest()


def test_a_service_uri_of_its_own_falls_back_to_amqp_uri():
    env = {"AMQP_URI": "amqp://pont:x@rabbit:5672/", "PONT_CONSENT_AMQP_URI": "amqp://consent:y@rabbit:5672/"}
    assert Settings.from_env("consent", env).amqp_uri == "amqp://consent:y@rabbit:5672/"
    assert Settings.from_env("referrals", env).amqp_uri == "amqp://pont:x@rabbit:5672/"


def test_production_refuses_the_development_broker_password_without_printing_it():
    strong = {name: "s" * 40 for name in ("PONT_JWT_SECRET", "PONT_CHILD_REF_SECRET", "PONT_LEDGER_KEY")}
    strong["PONT_CALLER_VERIFY_KEY"] = public_key_of(new_signing_key())
    env = {**strong, "PONT_ENV": "production", "PONT_CONSENT_AMQP_URI": "amqp://consent:pont-broker-dev@rabbit/"}
    with pytest.raises(UnsafeConfiguration, match="PONT_CONSENT_AMQP_URI") as caught:
        Settings.from_env("consent", env).check_secrets()
    assert "pont-broker-dev" not in str(caught.value)
