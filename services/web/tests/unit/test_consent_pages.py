"""The consent and find-a-pupil pages' own rules, before any gateway call: who may use them, what a form lacks."""
from __future__ import annotations

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.config import Settings
from web import consent_pages
from web.cookies import SESSION_COOKIE
from web.gateway import Answer
from web.pages import Web


class NoGateway:
    """Fails the test if a page asks the gateway: these answers must come before any call."""

    def call(self, *args, **kwargs):
        raise AssertionError("the gateway was asked")


class Answers:
    """A gateway that gives one answer and remembers what it was asked."""

    def __init__(self, answer: Answer):
        self.answer, self.asked = answer, []

    def call(self, method, path, token, body=None, idempotency_key=None):
        self.asked.append((method, path))
        return self.answer


def signed_in(who: str, gateway=None) -> tuple[Web, dict, str]:
    pages = Web(Settings.from_env("web", {"PONT_ENV": "development", "PONT_AGENCIES": "school:1,health:h"}),
                gateway=gateway or NoGateway())
    first = pages.sign_in(Request(EnvironBuilder(method="GET", path="/sign-in").get_environ()))
    cookie = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    csrf = pages.sessions.load(cookie)["csrf"]
    done = pages.sign_in(Request(EnvironBuilder(method="POST", path="/sign-in", data={"user": who, "csrf": csrf},
                                                headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}).get_environ()))
    return pages, {"Cookie": done.headers["Set-Cookie"].split(";")[0], "Accept-Language": "en"}, csrf


def request(method: str, path: str, headers: dict, **kwargs) -> Request:
    return Request(EnvironBuilder(method=method, path=path, headers=headers, **kwargs).get_environ())


def blank(**answers) -> dict:
    values = {"upn": "", "given_name": "", "family_name": "", "date_of_birth": "", "given_by_name": "",
              "relationship": "parent", "competence_assessed": "", "recipients": [], "purposes": ["referral"],
              "categories": ["contact"], "expires_on": "", "evidence": "written", "referral": ""}
    return {**values, **answers}


def test_a_role_without_consent_is_refused_the_consent_pages_and_one_outside_a_school_the_pupil_search():
    pages, headers, csrf = signed_in("social-worker")
    nurse_pages, nurse_headers, _csrf = signed_in("nurse")

    form = consent_pages.consent_new(pages, request("GET", "/consents/new", headers))
    listed = consent_pages.child_consents(pages, request("GET", "/children/c_1/consents", headers), "c_1")
    withdraw = consent_pages.withdraw_consent(
        pages, request("POST", "/consents/x/withdraw", headers, data={"csrf": csrf, "child_ref": "c_1",
                                                                      "reason": "asked"}), "x")
    search = consent_pages.find_pupil(nurse_pages, request("GET", "/pupils?q=Jones", nurse_headers))

    assert [r.status_code for r in (form, listed, withdraw, search)] == [403, 403, 403, 403]


def test_a_withdrawal_needs_the_csrf_token_a_sound_reference_and_a_reason():
    pages, headers, csrf = signed_in("teacher")

    def withdraw(**form):
        return consent_pages.withdraw_consent(pages, request("POST", "/consents/x/withdraw", headers, data=form), "x")

    assert withdraw(csrf="guess", child_ref="c_1", reason="asked").status_code == 403
    assert withdraw(csrf=csrf, child_ref="../c", reason="asked").status_code == 404


def test_a_consent_form_names_each_missing_answer_and_a_date_that_is_not_one():
    errors = consent_pages.consent_errors(blank(date_of_birth="14/03/2015", relationship="aunt", purposes=[],
                                                categories=[]), str)

    assert [field for field, _message in errors] == [
        "upn", "given_name", "family_name", "given_by_name", "date_of_birth", "relationship-parent",
        "recipient-0", "purpose-referral", "category-contact"]


def test_a_consent_body_is_the_gateways_shape_with_an_end_date_only_when_given():
    values = blank(upn="A661000000012", given_name="Cerys", family_name="Jones", date_of_birth="2015-03-14",
                   given_by_name="Rhian Jones", recipients=["health:h"], competence_assessed="yes")

    body = consent_pages.consent_body(values)

    assert body == {"child": {"upn": "A661000000012", "given_name": "Cerys", "family_name": "Jones",
                              "date_of_birth": "2015-03-14"},
                    "given_by": {"name": "Rhian Jones", "relationship": "parent"}, "competence_assessed": True,
                    "recipients": ["health:h"], "purposes": ["referral"], "categories": ["contact"],
                    "evidence": "written"}
    assert consent_pages.consent_body({**values, "expires_on": "2027-07-31"})["expires_on"] == "2027-07-31"


def test_a_whole_upn_is_looked_up_as_a_upn_and_a_pupil_known_by_consent_alone_is_listed_as_such():
    gateway = Answers(Answer(200, [{"child_ref": "c_1", "upn": "A661000000012", "given_name": None,
                                    "family_name": None, "date_of_birth": None, "referrals": 0,
                                    "last_referred_at": None}]))
    pages, headers, _csrf = signed_in("teacher", gateway)

    shown = consent_pages.find_pupil(pages, request("GET", "/pupils?q=a661000000012", headers))

    assert gateway.asked == [("GET", "/api/v1/children?upn=A661000000012")]
    assert shown.status_code == 200 and 'href="/children/c_1/consents">Consent only<' in shown.get_data(as_text=True)


def test_anything_else_is_looked_up_as_a_name():
    gateway = Answers(Answer(200, []))
    pages, headers, _csrf = signed_in("dsl", gateway)

    shown = consent_pages.find_pupil(pages, request("GET", "/pupils?q=Si%C3%A2n+ap", headers))

    assert gateway.asked == [("GET", "/api/v1/children?name=Si%C3%A2n%20ap")]
    assert "No pupil your school has referred matches that." in shown.get_data(as_text=True)
