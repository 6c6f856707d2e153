"""Hostile input at the gateway: oversized and deeply nested bodies, bad headers — a 4xx problem, never a 5xx."""
from __future__ import annotations

import uuid

import pytest
import requests
from nameko.contextdata import ContextDataProvider
from pydantic import BaseModel, ConfigDict

from gateway.api import MAX_JSON_DEPTH, api
from gateway.service import GatewayService
from pont_shared.testing import bearer, http_url

pytestmark = pytest.mark.integration


class CorrelationId(ContextDataProvider):
    context_key = "correlation_id"


class Anything(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: object = None


class EchoGateway(GatewayService):
    name = "gateway"
    correlation_id = CorrelationId()

    @api("POST", "/api/v1/echo", roles=("school_staff",), body=Anything, idempotent=True, summary="test echo")
    def echo(self, caller, body, idempotency_key):
        return {"key": idempotency_key, "correlation_id": self.correlation_id}


LIMIT = 4096
STAFF = bearer("t1", "school:6612001", ["school_staff"])


@pytest.fixture
def gateway(start_service, make_settings, service_name):
    container = start_service(EchoGateway, make_settings("gateway", "sqlite://", max_body_bytes=LIMIT),
                              name=service_name)
    return http_url(container)


def echo(base, data, **headers):
    return requests.post(f"{base}/api/v1/echo", data=data,
                         headers={**STAFF, "Content-Type": "application/json", **headers}, timeout=30)


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def nested(depth: int) -> str:
    return '{"value": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


class TestBodySize:
    def test_a_body_within_the_limit_is_accepted(self, gateway):
        assert echo(gateway, '{"value": "' + "x" * (LIMIT - 20) + '"}').status_code == 200

    def test_a_declared_body_over_the_limit_is_a_413_problem(self, gateway):
        problem = assert_problem(echo(gateway, '{"value": "' + "x" * LIMIT + '"}'), 413)
        assert str(LIMIT) in problem["detail"]

    def test_a_streamed_body_without_a_length_is_a_411_problem_unread(self, gateway):
        chunks = (part.encode() for part in ['{"value": "', *["x" * 1000] * 10, '"}'])  # chunked: no Content-Length

        assert_problem(echo(gateway, chunks), 411)


class TestNesting:
    def test_nesting_at_the_limit_is_accepted(self, gateway):
        assert echo(gateway, nested(MAX_JSON_DEPTH)).status_code == 200

    def test_one_level_deeper_is_a_400_problem(self, gateway):
        problem = assert_problem(echo(gateway, nested(MAX_JSON_DEPTH + 1)), 400)
        assert "nested deeper" in problem["detail"]

    @pytest.mark.parametrize("depth", [1_000, 2_000])  # past the interpreter's recursion limit
    def test_nesting_deep_enough_to_exhaust_a_recursive_parser_is_a_400_problem(self, start_service,
                                                                                make_settings, service_name, depth):
        container = start_service(EchoGateway, make_settings("gateway", "sqlite://"), name=service_name)

        assert_problem(echo(http_url(container), "[" * depth + "]" * depth), 400)

    def test_invalid_utf8_is_a_400_problem(self, gateway):
        assert_problem(echo(gateway, b'{"value": "\xff\xfe"}'), 400)


class TestHeaders:
    def test_a_printable_idempotency_key_reaches_the_route(self, gateway):
        assert echo(gateway, "{}", **{"Idempotency-Key": "order-42/retry:1"}).json()["key"] == "order-42/retry:1"

    @pytest.mark.parametrize("key", ["k" * 129, "has space", "tab\there", "caf\u00e9".encode().decode("latin-1")])
    def test_a_long_or_unprintable_idempotency_key_is_422_naming_the_header(self, gateway, key):
        problem = assert_problem(echo(gateway, "{}", **{"Idempotency-Key": key}), 422)
        assert [error["field"] for error in problem["errors"]] == ["Idempotency-Key"]

    def test_a_uuid_correlation_id_is_kept(self, gateway):
        given = str(uuid.uuid4())
        assert echo(gateway, "{}", **{"X-Correlation-ID": given}).json()["correlation_id"] == given

    @pytest.mark.parametrize("given", ["Megan Pritchard A661000000001", "x" * 65, "a\\u0000b", "<script>"])
    def test_any_other_correlation_id_is_replaced_by_a_fresh_one(self, gateway, given):
        used = echo(gateway, "{}", **{"X-Correlation-ID": given}).json()["correlation_id"]

        assert used != given and uuid.UUID(used)


REFERRAL = {
    "child": {"upn": "A661000000001", "given_name": "Ffion", "family_name": "Jones", "date_of_birth": "2015-04-12"},
    "to_org": "health:cardiff-vale", "service": "school_nursing", "reason": "low mood",
    "details": "Withdrawn in class.", "urgency": "urgent", "share": ["contact", "health_wellbeing"],
}


class TestFreeFormFields:
    """Checked at the gateway, before any service (or the consent ledger) sees the request."""

    @pytest.fixture
    def gateway(self, start_service, make_settings, service_name):  # the default body limit
        return http_url(start_service(EchoGateway, make_settings("gateway", "sqlite://"), name=service_name))

    @pytest.mark.parametrize("information, field", [
        ({"contact": "07700 900123"}, "information"),
        ({"health_wellbeing": {"nested": {"deeper": "x"}}}, "information.health_wellbeing"),
        ({"health_wellbeing": "x" * 10_001}, "information.health_wellbeing"),
        ({"health_wellbeing": 42}, "information.health_wellbeing"),
        ({"contact": {f"field_{n}": "x" for n in range(21)}}, "information.contact"),
        ({"contact": {"Phone Number": "x"}}, "information.contact"),
        ({"not_a_category": "x"}, "information.not_a_category"),
    ])
    def test_information_of_the_wrong_shape_is_422_naming_the_field(self, gateway, information, field):
        body = {**REFERRAL, "information": information}
        response = requests.post(f"{gateway}/api/v1/referrals", json=body, headers=STAFF, timeout=30)

        problem = assert_problem(response, 422)
        assert any(error["field"].startswith(field) for error in problem["errors"]), problem

    @pytest.mark.parametrize("name, value", [("reason", "x" * 2001), ("details", "x" * 10_001),
                                             ("justification", "x" * 2001), ("reason", 7)])
    def test_unbounded_or_mistyped_free_text_is_422_naming_the_field(self, gateway, name, value):
        response = requests.post(f"{gateway}/api/v1/referrals", json={**REFERRAL, name: value}, headers=STAFF,
                                 timeout=30)

        assert name in [error["field"] for error in assert_problem(response, 422)["errors"]]

    def test_transition_sections_are_bounded(self, gateway):
        pupil = {"child": REFERRAL["child"], "sections": {
            "agency_involvement": [{"agency": "health:cardiff-vale", "service": "camhs"}] * 51}}
        lead = bearer("t1", "school:6612001", ["transition_lead"])
        response = requests.post(f"{gateway}/api/v1/transitions", json={"to_school": "school:6614002",
                                                                         "pupils": [pupil]},
                                 headers=lead, timeout=30)

        fields = [error["field"] for error in assert_problem(response, 422)["errors"]]
        assert "pupils.0.sections.agency_involvement" in fields
