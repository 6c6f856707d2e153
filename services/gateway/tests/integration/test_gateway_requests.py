"""The gateway's front door: authentication, validation and problem details, and no leaks."""
from __future__ import annotations

import io
import logging
import time

import pytest
import requests
import structlog
from pydantic import BaseModel, ConfigDict

from gateway.api import api
from gateway.schemas import Child
from gateway.service import GatewayService
from pont_shared.contract.errors import Conflict
from pont_shared.identity import make_upn
from pont_shared.logs import configure_logging
from pont_shared.testing import bearer, http_url

pytestmark = pytest.mark.integration
log = structlog.get_logger("pont.probe")


class ProbeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    child: Child
    count: int


class ProbeRoutes:
    @api("POST", "/api/v1/probe", roles=("school_staff",), body=ProbeBody, status=201, summary="test probe")
    def probe(self, caller, body):
        # a careless handler: logs the child and fails with the child's name in the message
        log.info("probe.received", child=body.child.model_dump(mode="json"), count=body.count)
        if body.count == 0:
            raise Conflict(f"{body.child.given_name} {body.child.family_name} is already booked")
        return {"count": body.count, "by": caller.sub}


class ProbeGateway(ProbeRoutes, GatewayService):
    name = "gateway"


@pytest.fixture
def gateway(start_service, make_settings, service_name):
    container = start_service(ProbeGateway, make_settings("gateway", "sqlite://"), name=service_name)
    return http_url(container)


@pytest.fixture
def logs():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("gateway", "DEBUG", stream=stream)
    yield stream
    root.handlers, level = saved
    root.setLevel(level)


STAFF = bearer("t1", "school:6612001", ["school_staff"])
CHILD = {"upn": make_upn(4242), "given_name": "Megan", "family_name": "Pritchard", "date_of_birth": "2014-05-03"}


def post(base, body, headers=STAFF, raw=None):
    return requests.post(f"{base}/api/v1/probe", json=None if raw is not None else body, data=raw,
                         headers={**headers, "Content-Type": "application/json"}, timeout=10)


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and "type" in problem
    return problem


class TestAuthentication:
    def test_a_missing_token_is_401(self, gateway):
        assert_problem(post(gateway, {"child": CHILD, "count": 1}, headers={}), 401)

    def test_an_expired_token_is_401(self, gateway):
        expired = bearer("t1", "school:6612001", ["school_staff"], ttl_seconds=-60)

        problem = assert_problem(post(gateway, {"child": CHILD, "count": 1}, headers=expired), 401)

        assert "expired" in problem["detail"]

    def test_a_token_signed_with_another_secret_is_401(self, gateway):
        forged = bearer("t1", "school:6612001", ["school_staff"], secret="not-the-secret")

        assert_problem(post(gateway, {"child": CHILD, "count": 1}, headers=forged), 401)

    def test_a_role_not_allowed_is_403(self, gateway):
        nurse = bearer("n1", "health:cardiff-vale", ["school_nurse"])

        assert_problem(post(gateway, {"child": CHILD, "count": 1}, headers=nurse), 403)


class TestValidation:
    def test_a_valid_request_is_accepted(self, gateway):
        response = post(gateway, {"child": CHILD, "count": 3})

        assert response.status_code == 201
        assert response.json() == {"count": 3, "by": "t1"}

    @pytest.mark.parametrize("raw", ["{not json", "", "[1, 2", "\xff"])
    def test_malformed_json_is_a_4xx_problem(self, gateway, raw):
        response = post(gateway, None, raw=raw.encode("latin-1"))

        assert 400 <= response.status_code < 500
        assert_problem(response, response.status_code)

    @pytest.mark.parametrize("body, field", [
        ({"child": CHILD, "count": "many"}, "count"),
        ({"child": CHILD}, "count"),
        ({"child": {**CHILD, "upn": "A00000000000X"}, "count": 1}, "child.upn"),
        ({"child": {**CHILD, "upn": "B" + CHILD["upn"][1:] if CHILD["upn"][0] != "B" else "C" + CHILD["upn"][1:]},
          "count": 1}, "child.upn"),
        ({"child": {**CHILD, "date_of_birth": "03/05/2014"}, "count": 1}, "child.date_of_birth"),
        ({"child": CHILD, "count": 1, "unexpected": True}, "unexpected"),
        ([1, 2, 3], "body"),
    ])
    def test_wrong_types_and_values_are_422_naming_the_field(self, gateway, body, field):
        problem = assert_problem(post(gateway, body), 422)

        assert field in [error["field"] for error in problem["errors"]]

    def test_the_api_is_published_as_openapi_3_1(self, gateway):
        document = requests.get(f"{gateway}/openapi.json", timeout=10).json()

        assert document["openapi"].startswith("3.1")
        assert "post" in document["paths"]["/api/v1/probe"]

    def test_health_and_ready_answer(self, gateway):
        assert requests.get(f"{gateway}/health", timeout=10).status_code == 200
        ready = requests.get(f"{gateway}/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["broker"] is True


def test_logs_of_a_flow_carrying_a_childs_name_upn_and_birth_date_contain_none_of_them(gateway, logs):
    post(gateway, {"child": CHILD, "count": 2})
    post(gateway, {"child": {**CHILD, "upn": CHILD["upn"][:-1] + "x"}, "count": 1})
    conflict = post(gateway, {"child": CHILD, "count": 0})

    assert conflict.status_code == 409
    text = logs.getvalue()
    assert "probe.received" in text  # the flow was logged...
    for value in ("Megan", "Pritchard", CHILD["upn"], CHILD["date_of_birth"]):
        assert value not in text  # ...without the child


class TestAStoppedService:
    """A stopped service whose durable `rpc-<name>` queue is still bound: nothing will answer."""

    @pytest.fixture
    def silent_bookings(self, broker_url, service_name):
        from kombu import Connection

        from pont_shared.messaging.topology import rpc_queue

        target = f"{service_name}_bookings"
        queue = rpc_queue(f"rpc-{target}", f"{target}.*")
        with Connection(broker_url) as conn:
            queue(conn.default_channel).declare()
            yield target
            queue(conn.default_channel).delete()

    def test_a_request_gets_a_504_problem_at_the_deadline_and_the_gateway_stays_free(
            self, start_service, make_settings, service_name, silent_bookings):
        container = start_service(ProbeGateway, make_settings("gateway", "sqlite://"), name=service_name,
                                  extra_config={"PONT_BOOKINGS_SERVICE": silent_bookings,
                                                "PONT_GATEWAY_RPC_TIMEOUT_SECONDS": 1, "max_workers": 2})
        nurse = bearer("n1", "health:cardiff-vale", ["school_nurse"])
        url = f"{http_url(container)}/api/v1/sessions/00000000-0000-0000-0000-000000000000"

        started = time.monotonic()
        answers = [requests.get(url, headers=nurse, timeout=10) for _ in range(3)]  # more than max_workers
        took = time.monotonic() - started

        for answer in answers:
            assert_problem(answer, 504)
        assert took < 3 * 1 + 3  # each request waited for its deadline, not for ever
        assert_problem(post(http_url(container), {"child": CHILD, "count": 0}), 409)  # workers were freed
