"""Who may call what: every operation of `/openapi.json` × every role × own/other organisation.

The operations, and the roles each allows (`x-pont-roles`), are read from the document the
running gateway serves, so a route added later is covered without editing this file. API.md
fixes the answers: no or a bad token → 401; a role the operation does not allow → 403; an
allowed role asking for another organisation's resource → 404; and nothing a caller sends
gets a 5xx.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import uuid
from datetime import date, timedelta

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from nameko.containers import ServiceContainer

from agency_link.service import AgencyLinkService
from bookings.service import BookingsService
from consent.service import ConsentService
from gateway import openapi
from gateway.rpc import agency_link_name
from gateway.service import GatewayService
from pont_shared.auth import ROLES
from pont_shared.config import Settings
from pont_shared.identity import make_upn
from pont_shared.testing import bearer, fresh_database, http_url, own_vhost, web_address
from pont_shared.testing.fixtures import delete_queues
from referrals.service import ReferralsService
from transitions.service import TransitionsService

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SCHOOL, OTHER_SCHOOL = f"school:m{RUN}", f"school:n{RUN}"
HEALTH, SOCIAL, YOUTH = f"health:m{RUN}", f"social_care:m{RUN}", f"youth_work:m{RUN}"
AUTHORITY = f"local_authority:m{RUN}"
AGENCIES = (SCHOOL, OTHER_SCHOOL, HEALTH, SOCIAL, YOUTH, f"health:o{RUN}", f"social_care:o{RUN}",
            f"youth_work:o{RUN}")
UNCONNECTED = f"health:u{RUN}"  # a valid token of an organisation with no agency link here
# the organisation each role works for, and one of another organisation of the same kind
HOME = {"school_staff": SCHOOL, "dsl": SCHOOL, "transition_lead": SCHOOL, "school_nurse": HEALTH,
        "health_practitioner": HEALTH, "social_worker": SOCIAL, "youth_worker": YOUTH, "admin": AUTHORITY,
        "family": SCHOOL}
AWAY = {"school_staff": OTHER_SCHOOL, "dsl": OTHER_SCHOOL, "transition_lead": OTHER_SCHOOL,
        "school_nurse": f"health:o{RUN}", "health_practitioner": f"health:o{RUN}",
        "social_worker": f"social_care:o{RUN}", "youth_worker": f"youth_work:o{RUN}",
        "admin": f"local_authority:o{RUN}", "family": OTHER_SCHOOL}
DOCUMENT = openapi.document(GatewayService)
OPERATIONS = [(method.upper(), path, op) for path, ops in DOCUMENT["paths"].items() for method, op in ops.items()]
PROTECTED = [(method, path, op) for method, path, op in OPERATIONS if "security" in op]


def _id(operation) -> str:
    return f"{operation[0]} {operation[1]}"


def who(role: str, org: str | None = None) -> dict:
    return bearer(f"{role}-{RUN}", org or HOME[role], [role])


@pytest.fixture(scope="module")
def pont():
    """Every service and the agency links of two schools, health and social care, on their own vhost."""
    containers: list[ServiceContainer] = []
    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(own_vhost("pont_matrix"))
        env = {"AMQP_URI": uri, "PONT_LOG_LEVEL": "WARNING", "PONT_OUTBOX_POLL_SECONDS": "0.2",
               "PONT_RETRY_DELAYS": "0.05,0.1,0.2"}

        def start(cls, name: str, database: str | None, extra: dict | None = None) -> ServiceContainer:
            url = stack.enter_context(fresh_database(f"pont_matrix_{cls.__name__[:8].lower()}")) if database else "sqlite://"
            settings = dataclasses.replace(Settings.from_env(name, env, http_port=0), database_url=url)
            config = {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address(), **(extra or {})}
            container = ServiceContainer(type(cls.__name__, (cls,), {"name": name}), config)
            container.start()
            containers.append(container)
            return container

        try:
            for cls, name in ((ConsentService, "consent"), (ReferralsService, "referrals"),
                              (BookingsService, "bookings"), (TransitionsService, "transitions")):
                start(cls, name, "own")
            for org in AGENCIES:
                start(AgencyLinkService, agency_link_name(org), "own", {"org": org})
            base = http_url(start(GatewayService, "gateway", None))
            with requests.Session() as http:
                yield Pont(base, http)
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


@dataclasses.dataclass
class Pont:
    base: str
    http: requests.Session

    def call(self, method: str, path: str, headers: dict | None = None, body=None) -> requests.Response:
        return self.http.request(method, self.base + path, headers=headers or {}, json=body, timeout=30)

    def created(self, path: str, role: str, body: dict) -> dict:
        response = self.call("POST", path, who(role), body)
        assert response.status_code == 201, (path, response.status_code, response.text)
        return response.json()


def child() -> dict:
    return {"upn": make_upn(uuid.uuid4().int % 10**9), "given_name": "Nia", "family_name": "Pugh",
            "date_of_birth": "2014-09-01"}


@pytest.fixture(scope="module")
def owned(pont: Pont) -> dict[str, str]:
    """One resource of each kind, owned by SCHOOL or HEALTH: {path parameter kind: id}."""
    parties = [SCHOOL, OTHER_SCHOOL, HEALTH, SOCIAL]
    agreement = pont.created("/api/v1/agreements", "admin", {
        "parties": parties, "purposes": ["referral", "appointment", "transition"],
        "categories": ["contact", "education", "attendance", "aln", "health_wellbeing"],
        "valid_from": "2020-01-01", "valid_to": "2099-12-31"})
    for party in parties:
        assert pont.call("POST", f"/api/v1/agreements/{agreement['id']}/approve", who("admin", party)).ok
    pupil = child()
    consent = pont.created("/api/v1/consents", "school_staff", {
        "child": pupil, "given_by": {"name": "Ann Pugh", "relationship": "parent"}, "recipients": [HEALTH],
        "purposes": ["referral", "appointment"], "categories": ["contact", "health_wellbeing"],
        "evidence": "written"})
    referral = pont.created("/api/v1/referrals", "school_staff", {
        "child": pupil, "to_org": HEALTH, "service": "school_nursing", "reason": "sleep",
        "details": "tired in lessons", "urgency": "routine", "share": ["contact", "health_wellbeing"]})
    session = pont.created("/api/v1/sessions", "school_nurse", {
        "site": SCHOOL, "room": "Medical room", "service": "school_nursing", "date": "2030-01-07",
        "start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1})
    appointment = pont.created("/api/v1/appointments", "school_nurse",
                               {"slot_id": session["slots"][0]["id"], "child": pupil})
    transition = pont.created("/api/v1/transitions", "transition_lead", {
        "to_school": OTHER_SCHOOL, "pupils": [{"child": child(), "sections": {"attendance": {
            "year": 2025, "sessions_possible": 380, "sessions_authorised": 2, "sessions_unauthorised": 0}}}]})
    ledger = pont.call("GET", f"/api/v1/children/{consent['child_ref']}/disclosures", who("dsl"))
    [disclosure] = [entry["id"] for entry in ledger.json() if entry["kind"] == "disclosure"]
    return {"agreements": agreement["id"], "consents": consent["id"], "referrals": referral["id"],
            "sessions": session["id"], "appointments": appointment["id"], "transitions": transition["ids"][0],
            "children": consent["child_ref"], "disclosures": disclosure}


def minimal_body(op: dict) -> dict | None:
    """A body with each required string field filled, so the request reaches the service; None without a body."""
    if "requestBody" not in op:
        return None
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = DOCUMENT["components"]["schemas"][ref]
    return {name: (str(date.today() + timedelta(days=30)) if prop.get("format") == "date" else "not allowed here")
            for name in schema.get("required", ()) if (prop := schema["properties"][name]).get("type") == "string"}


def concrete(path: str, ids: dict[str, str] | None = None) -> str:
    """The path with each `{param}` filled: the owned resource of that collection, or an unknown id."""
    def fill(match: re.Match) -> str:
        collection = path[:match.start()].rstrip("/").rsplit("/", 1)[-1]
        return (ids or {}).get(collection, str(uuid.uuid4()))
    return re.sub(r"\{\w+\}", fill, path)


def test_the_gateway_serves_the_document_the_matrix_is_read_from(pont):
    served = pont.call("GET", "/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert len(PROTECTED) >= 25, "every route of API.md is in the document"


@pytest.mark.parametrize("operation", PROTECTED, ids=_id)
def test_no_token_or_a_forged_one_is_401(pont, operation):
    method, path, _ = operation
    forged = bearer("admin1", SCHOOL, sorted(ROLES), secret="not-the-platform-secret-" + RUN)
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}, forged):
        response = pont.call(method, concrete(path), headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("operation", PROTECTED, ids=_id)
def test_a_role_the_operation_does_not_name_is_403_and_one_it_names_gets_past_authorisation(pont, operation):
    method, path, op = operation
    allowed = set(op["x-pont-roles"])
    for role in sorted(ROLES):
        response = pont.call(method, concrete(path), who(role), {} if method == "POST" else None)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
            assert response.status_code < 500, (role, response.status_code, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)


OWNED = re.compile(r"/(agreements|consents|referrals|sessions|appointments|transitions|disclosures)/\{id\}"
                   r"|/children/\{child_ref\}")
OWNED_PATHS = [(method, path, op) for method, path, op in PROTECTED if OWNED.search(path)]


@pytest.mark.parametrize("operation", OWNED_PATHS, ids=_id)
def test_another_organisations_resource_is_404_to_every_role_the_operation_allows(pont, owned, operation):
    method, path, op = operation
    url = concrete(path, owned)
    for role in op["x-pont-roles"]:
        response = pont.call(method, url, who(role, AWAY[role]), minimal_body(op))
        assert response.status_code == 404, (role, response.status_code, response.text)


def test_an_unknown_id_is_404_and_not_a_5xx_for_the_roles_allowed(pont):
    for method, path, op in OWNED_PATHS:
        for role in op["x-pont-roles"]:
            response = pont.call(method, concrete(path), who(role), minimal_body(op))
            assert response.status_code == 404, (method, path, role, response.status_code, response.text)


FAMILY_PATHS = [(method, path, op) for method, path, op in PROTECTED if "family" in op["x-pont-roles"]]


def test_a_family_of_the_same_school_reads_nothing_about_a_child_it_is_not_linked_to(pont, owned):
    """A parent linked to one pupil asks every family operation about another pupil of the same
    school (the owned child, its consent): 404 each time, and their own list names only their child."""
    theirs = child()
    invited = pont.created("/api/v1/family/invites", "school_staff", {"child": theirs, "relationship": "parent"})
    parent = bearer(f"parent-{RUN}", SCHOOL, ["family"])
    linked = pont.call("POST", "/api/v1/family/links", parent, {"code": invited["code"]})
    assert linked.status_code == 201, linked.text
    assert invited["child_ref"] != owned["children"]
    asked = 0
    for method, path, op in FAMILY_PATHS:
        if "{" not in path:
            continue
        response = pont.call(method, concrete(path, owned), parent, minimal_body(op))
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        asked += 1
    assert asked >= 3
    mine = pont.call("GET", "/api/v1/family/children", parent)
    assert [c["child_ref"] for c in mine.json()] == [invited["child_ref"]]
    assert pont.call("GET", "/api/v1/family/children", bearer(f"stranger-{RUN}", SCHOOL, ["family"])).json() == []


def test_an_organisation_with_no_agency_link_here_is_told_so_with_403(pont):
    response = pont.call("GET", "/api/v1/inbox/referrals", who("school_nurse", UNCONNECTED))
    assert response.status_code == 403, response.text
    assert "no agency link" in response.json()["detail"]


def test_an_admin_reads_a_childs_ledger_only_where_its_own_organisation_shared_or_received(pont, owned):
    path = f"/api/v1/children/{owned['children']}/disclosures"
    school_admin = pont.call("GET", path, who("admin", SCHOOL))
    assert school_admin.status_code == 200, school_admin.text
    assert {entry["to_org"] for entry in school_admin.json() if entry["kind"] == "disclosure"} == {HEALTH}
    assert pont.call("GET", path, who("admin", AUTHORITY)).status_code == 404


# --- nothing a client sends gets a 5xx: schemathesis, from the same document ----------------

FUZZED = schemathesis.openapi.from_dict(DOCUMENT)
EVERY_ROLE = bearer(f"fuzz-{RUN}", SCHOOL, sorted(ROLES))   # gets past every role check to the service


@FUZZED.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_never_get_a_5xx(pont, case):
    response = case.call(base_url=pont.base, headers=EVERY_ROLE, timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text)
