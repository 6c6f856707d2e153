"""The event contract: envelopes are CloudEvents, shared events carry no personal data."""
import pytest

from pont_shared.contract.envelope import EVENTS_EXCHANGE, Envelope
from pont_shared.contract.events import CATALOGUE, ConsentWithdrawn, asyncapi, json_schemas
from pont_shared.logs import PERSONAL_KEYS

SHARED = [model for model in CATALOGUE.values() if model.EXCHANGE == EVENTS_EXCHANGE]


@pytest.mark.parametrize("model", SHARED, ids=lambda m: m.TYPE)
def test_events_on_the_shared_exchange_have_no_personal_fields(model):
    fields = set(model.model_fields)

    # every shared event is about a child (by child_ref) or a session, except the ledger's anchor (a chain head)
    assert "child_ref" in fields or "session_id" in fields or model.TYPE == "pont.ledger.anchored.v1"
    assert not fields & (PERSONAL_KEYS - {"reason"}), f"{model.TYPE} carries personal fields"
    assert not any(field in fields for field in ("upn", "given_name", "family_name", "date_of_birth", "details"))


def test_types_follow_pont_aggregate_verb_version():
    for event_type in CATALOGUE:
        parts = event_type.split(".")
        assert parts[0] == "pont" and parts[-1].startswith("v") and len(parts) == 4, event_type


def test_an_envelope_wraps_a_payload_with_cloudevents_attributes():
    payload = ConsentWithdrawn(consent_id="c1", child_ref="c_abc", recipients=["health:cardiff-vale"])

    envelope = Envelope.wrap(payload, source="/pont/consent", subject="c_abc", causationid="e0")

    assert envelope.type == "pont.consent.withdrawn.v1"
    assert envelope.specversion == "1.0"
    assert envelope.subject == "c_abc"
    assert envelope.correlationid == envelope.id  # a new flow starts its own correlation
    assert envelope.payload(ConsentWithdrawn) == payload


def test_consumers_ignore_unknown_fields():
    data = {"consent_id": "c1", "child_ref": "c_abc", "recipients": [], "added_in_a_later_version": 1}

    assert ConsentWithdrawn.model_validate(data).consent_id == "c1"


def test_every_event_exports_a_json_schema_and_the_asyncapi_document_lists_them():
    schemas = json_schemas()

    assert set(schemas) == set(CATALOGUE)
    assert all(schema["type"] == "object" for schema in schemas.values())
    assert set(asyncapi()["channels"]) == set(CATALOGUE)
