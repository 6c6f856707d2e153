"""The pages: each a work queue first, then its forms. Framework-free but for werkzeug's Request/Response.

Every page reads and writes through the gateway's public API with the signed-in user's token;
the web keeps nothing of its own but the session cookie. A form POST needs the session's CSRF
token; what the gateway refuses comes back as an error summary linked to the fields.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from urllib.parse import quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from pont_shared.auth import mint
from pont_shared.config import Settings
from pont_shared.mail import smtp_poster

from . import i18n
from .cookies import LANGUAGE_COOKIE, SESSION_COOKIE, Sessions, cookie_options, csrf_ok
from .gateway import Answer, Gateway
from .identity_provider import IdentityProvider, SignInFailed, Started
from .sign_in_links import SignInLinks

log = structlog.get_logger(__name__)
HERE = Path(__file__).parent
PROVIDER_ROLES = {"school_nurse", "health_practitioner", "social_worker", "youth_worker"}
SCHOOL_ROLES = {"school_staff", "dsl"}
SERVICES = ("school_nursing", "camhs", "social_care", "youth_work", "education_welfare", "families_first")
OUTCOMES = {"attended": "attended", "was-not-brought": "was-not-brought", "cancel": "cancel"}
# what each role may do to a referral on its page; decline and close need a few words of why
REFERRAL_ACTIONS = {"accept": PROVIDER_ROLES, "decline": PROVIDER_ROLES, "close": PROVIDER_ROLES,
                    "withdraw": SCHOOL_ROLES}
REFERRAL_NOTES = {"decline": ("reason", "reason_code"), "close": ("outcome", "outcome_code")}
REFERRAL_FILTERS = ("awaiting_consent", "sent", "accepted", "declined", "closed", "withdrawn")
URGENCY_ORDER = ("safeguarding", "urgent", "routine")


def _(message: str) -> str:
    """Marks a string for the catalogue; it is translated where it is shown (a template's `_()`)."""
    return message


ROLE_NAMES = {
    "dsl": _("Designated safeguarding lead"), "school_staff": _("School staff"),
    "transition_lead": _("Transition lead"), "school_nurse": _("School nurse"),
    "health_practitioner": _("Health practitioner"), "social_worker": _("Social worker"),
    "youth_worker": _("Youth worker"), "admin": _("Administrator"),
}
SERVICE_NAMES = {
    "school_nursing": _("School nursing"), "camhs": _("Child and adolescent mental health"),
    "social_care": _("Social care"), "youth_work": _("Youth work"),
    "education_welfare": _("Education welfare"), "families_first": _("Families First"),
}
STATUS_NAMES = {
    "booked": _("Booked"), "attended": _("Attended"), "was_not_brought": _("Was not brought"),
    "cancelled": _("Cancelled"), "open": _("Open"),
    "awaiting_consent": _("Awaiting consent"), "sent": _("Sent"), "received": _("Received"),
    "accepted": _("Accepted"), "declined": _("Declined"), "closed": _("Closed"), "withdrawn": _("Withdrawn"),
    "overdue": _("Overdue"),
}
URGENCY_NAMES = {"routine": _("Routine"), "urgent": _("Urgent"), "safeguarding": _("Safeguarding")}
CATEGORY_NAMES = {
    "contact": _("Contact details"), "education": _("Education"), "attendance": _("Attendance"),
    "aln": _("Additional learning needs"), "health_wellbeing": _("Health and wellbeing"),
    "safeguarding": _("Safeguarding"), "family_context": _("Family context"),
}
FIELD_NAMES = {
    "upn": _("Unique pupil number (UPN)"), "given_name": _("Given name"), "family_name": _("Family name"),
    "date_of_birth": _("Date of birth"),
}
CODE_NAMES = {
    "not_eligible": _("Not eligible for the service"), "already_involved": _("Already involved"),
    "insufficient_information": _("Not enough information"), "no_capacity": _("No capacity"),
    "support_completed": _("Support completed"), "referred_on": _("Referred on"),
    "no_further_action": _("No further action"), "family_disengaged": _("Family disengaged"), "other": _("Other"),
}
DECLINE_CODES = ("not_eligible", "already_involved", "insufficient_information", "no_capacity", "other")
CLOSE_CODES = ("support_completed", "referred_on", "no_further_action", "family_disengaged", "other")
KIND_NAMES = {"was_not_brought": _("Was not brought")}


@dataclass(frozen=True)
class DemoUser:
    key: str
    sub: str
    org: str
    roles: tuple[str, ...]
    label: str


def demo_users(agencies: tuple[str, ...]) -> tuple[DemoUser, ...]:
    """The demonstration people (scripts/demo.py) in the configured organisations (PONT_AGENCIES)."""
    def first(kind: str, nth: int = 0, default: str = "") -> str:
        orgs = [org for org in agencies if org.startswith(kind + ":")]
        return orgs[nth] if len(orgs) > nth else default or f"{kind}:demo"

    primary, secondary = first("school"), first("school", 1)
    people = [
        DemoUser("nurse", "demo-nurse", first("health"), ("school_nurse",), _("School nurse")),
        DemoUser("dsl", "demo-dsl", primary, ("dsl", "school_staff"), _("Designated safeguarding lead")),
        DemoUser("teacher", "demo-teacher", primary, ("school_staff",), _("Teacher")),
        DemoUser("lead", "demo-lead", primary, ("transition_lead", "dsl"), _("Transition lead")),
        DemoUser("receiver", "demo-receiver", secondary, ("transition_lead", "dsl"), _("Transition lead")),
        DemoUser("social-worker", "demo-social-worker", first("social_care"), ("social_worker",),
                 _("Social worker")),
        DemoUser("parent", "demo-parent", primary, ("family",), _("Parent or carer")),
        DemoUser("admin", "demo-admin", first("local_authority", default="local_authority:cardiff"), ("admin",),
                 _("Administrator")),
    ]
    return tuple(people)


class Page:
    """One request's context: its language, session, and what it will set on the response."""

    def __init__(self, app: Web, request: Request):
        self.app, self.request = app, request
        self.session = app.sessions.load(request.cookies.get(SESSION_COOKIE))
        self.language = i18n.choose(request.cookies.get(LANGUAGE_COOKIE), request.accept_languages)
        self.dirty = SESSION_COOKIE not in request.cookies

    @property
    def user(self) -> dict | None:
        return self.session.get("user")

    def gettext(self, message: str) -> str:
        return i18n.translations(self.language).gettext(message)

    def render(self, template: str, status: int = 200, **context) -> Response:
        # the page's own gettext, so concurrent requests in different languages never mix
        body = self.app.env.get_template(template).render(
            page=self, user=self.user, lang=self.language, csrf=self.session["csrf"], _=self.gettext,
            gettext=self.gettext, **context)
        return self.finish(Response(body, status=status, content_type="text/html; charset=utf-8"))

    def finish(self, response: Response) -> Response:
        if self.dirty:
            response.set_cookie(SESSION_COOKIE, self.app.sessions.dump(self.session),
                                **cookie_options(self.app.secure_cookies))
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self'; script-src 'self'; "
                                                       "form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def go(self, path: str) -> Response:
        return self.finish(redirect(path, code=303))

    def call(self, method: str, path: str, body: dict | None = None, idempotency_key: str | None = None) -> Answer:
        return self.app.gateway.call(method, path, self.user["token"], body, idempotency_key)

    # template helpers
    def when(self, value) -> str:
        return i18n.when(value, self.language)

    def day(self, value) -> str:
        return i18n.day(value, self.language)

    def clock(self, value) -> str:
        return i18n.clock(value, self.language)

    def named(self, names: dict, key: str) -> str:
        return self.gettext(names[key]) if key in names else key


class Web:
    def __init__(self, settings: Settings, gateway: Gateway | None = None):
        self.settings = settings
        self.gateway = gateway or Gateway(settings.gateway_url)
        self.sessions = Sessions(settings.jwt_secret)
        self.secure_cookies = settings.environment != "development"
        self.demo_users = demo_users(settings.agencies)
        self.identity_provider = IdentityProvider(settings.oidc_client) if settings.oidc_client else None
        self.mail = smtp_poster(settings.smtp_url, settings.notices_from)   # development: families' sign-in links
        self.sign_in_links = SignInLinks(settings.jwt_secret)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    service_names, status_names, kind_names = SERVICE_NAMES, STATUS_NAMES, KIND_NAMES
    urgency_names, category_names, field_names, code_names = URGENCY_NAMES, CATEGORY_NAMES, FIELD_NAMES, CODE_NAMES

    @property
    def development(self) -> bool:
        return self.settings.environment == "development"

    def page(self, request: Request) -> Page:
        return Page(self, request)

    # --- the pages -----------------------------------------------------------------------

    def home(self, request: Request) -> Response:
        page = self.page(request)
        if page.user is None:
            return page.go("/sign-in")
        if "family" in page.user["roles"]:
            return page.go("/family")
        if PROVIDER_ROLES.intersection(page.user["roles"]):
            return page.go("/sessions")
        if "transition_lead" in page.user["roles"]:
            return page.go("/transitions")
        if "admin" in page.user["roles"]:
            return page.go("/agreements")
        if "dsl" in page.user["roles"]:
            return page.go("/reviews")
        if "school_staff" in page.user["roles"]:
            return page.go("/referrals")
        return page.render("home.html")

    def sign_in(self, request: Request) -> Response:
        page = self.page(request)
        if self.identity_provider is not None:
            return self._sign_in_at_provider(page)
        if not self.development:
            return page.render("sign_in_unavailable.html", status=404)
        if request.method == "POST":
            if not csrf_ok(page.session, request.form.get("csrf")):
                return page.render("forbidden.html", status=403)
            chosen = next((u for u in self.demo_users if u.key == request.form.get("user")), None)
            if chosen is None:
                return page.render("sign_in.html", status=422, users=self.demo_users, schools=self.schools,
                                   values={}, errors=[("user", page.gettext("Choose who to sign in as"))])
            token = mint(chosen.sub, chosen.org, list(chosen.roles), self.settings.jwt_secret)
            back_to = _local(page.session.get("next"))
            page.session = {"csrf": page.session["csrf"], "user": {
                "key": chosen.key, "sub": chosen.sub, "org": chosen.org, "roles": list(chosen.roles),
                "label": chosen.label, "token": token}}
            page.dirty = True
            return page.go(back_to)
        return page.render("sign_in.html", users=self.demo_users, errors=[], schools=self.schools, values={})

    @property
    def schools(self) -> list[str]:
        return [org for org in self.settings.agencies if org.startswith("school:")]

    def _sign_in_at_provider(self, page: Page) -> Response:
        """Off to the organisation's identity provider; this browser's session keeps what the answer must match."""
        try:
            started = self.identity_provider.start()
        except SignInFailed as exc:
            log.warning("web.sign_in_unreachable", reason=str(exc))
            return page.render("sign_in_failed.html", status=502, reachable=False)
        page.session = {"csrf": page.session["csrf"],
                        "oidc": {"state": started.state, "nonce": started.nonce, "verifier": started.verifier},
                        **({"next": page.session["next"]} if page.session.get("next") else {})}
        page.dirty = True
        return page.go(started.url)

    def sign_in_callback(self, request: Request) -> Response:
        """The identity provider's answer: signed in with the roles and organisation its ID token names,
        in a new session; or refused, signed in as no one. A sign-in's answer is used once."""
        page = self.page(request)
        if self.identity_provider is None:
            return page.render("not_found.html", status=404)
        pending, back_to = page.session.pop("oidc", None), _local(page.session.get("next"))
        page.dirty = page.dirty or pending is not None
        try:
            if not isinstance(pending, dict):
                raise SignInFailed("no sign-in was started in this browser, or its answer was used")
            signed_in = self.identity_provider.finish(request.query_string.decode("latin-1"),
                                                      Started(url="", **pending))
        except SignInFailed as exc:
            log.warning("web.sign_in_refused", reason=str(exc))
            return page.render("sign_in_failed.html", status=403, reachable=True)
        page.session = {**self.sessions.load(None), "user": {
            "key": "oidc", "sub": signed_in.sub, "org": signed_in.org, "roles": signed_in.roles,
            "label": signed_in.name, "token": signed_in.access_token}}
        page.dirty = True
        return page.go(back_to)

    def sign_out(self, request: Request) -> Response:
        page = self.page(request)
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        page.session, page.dirty = self.sessions.load(None), True
        if self.identity_provider is None:
            return page.go("/sign-in")
        # the provider's own session ends too (RP-initiated logout), and it sends the browser to /signed-out;
        # never to /sign-in, which would go straight back to a provider that still remembers the user
        return page.go(self.identity_provider.end_session_url() or "/signed-out")

    def signed_out(self, request: Request) -> Response:
        return self.page(request).render("signed_out.html")

    def language(self, request: Request) -> Response:
        page = self.page(request)
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        chosen = request.form.get("lang")
        back = request.form.get("next") or "/"
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        response = page.go(back)
        if chosen in i18n.LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 24 * 3600,
                                **cookie_options(self.secure_cookies))
        return response

    def sessions_list(self, request: Request) -> Response:
        page = self.page(request)
        if (refused := self._needs(page)) is not None:
            return refused
        answer = page.call("GET", "/api/v1/sessions")
        if not answer.ok:
            return self._failed(page, answer)
        return page.render("sessions.html", sessions=answer.body,
                           can_schedule=bool(PROVIDER_ROLES.intersection(page.user["roles"])))

    def session_new(self, request: Request) -> Response:
        page = self.page(request)
        if (refused := self._needs(page, PROVIDER_ROLES)) is not None:
            return refused
        values = {"site": "", "room": "", "service": "school_nursing", "date": "", "start": "09:00", "end": "12:00",
                  "slot_minutes": "20", "capacity_per_slot": "1"}
        if request.method == "GET":
            return self._session_form(page, values, [])
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        values.update({key: request.form.get(key, "").strip() for key in values})
        body, errors = _session_body(values, page.gettext)
        if not errors:
            answer = page.call("POST", "/api/v1/sessions", body, idempotency_key=request.form.get("key"))
            if answer.ok:
                return page.go(f"/sessions/{quote(answer.body['id'])}")
            errors = self._refusal(page, answer, SESSION_FIELDS)
        return self._session_form(page, values, errors, status=422)

    def _session_form(self, page: Page, values: dict, errors: list, status: int = 200) -> Response:
        schools = [org for org in self.settings.agencies if org.startswith("school:")]
        return page.render("session_new.html", status=status, values=values, errors=errors, schools=schools,
                           services=SERVICES, key=str(uuid.uuid4()))

    def session_detail(self, request: Request, session_id: str, errors: list | None = None,
                       values: dict | None = None, status: int = 200) -> Response:
        page = self.page(request)
        if (refused := self._needs(page)) is not None:
            return refused
        answer = page.call("GET", f"/api/v1/sessions/{quote(session_id, safe='')}")
        if not answer.ok:
            return self._failed(page, answer)
        session = answer.body
        slot_times = {slot["id"]: slot for slot in session["slots"]}
        return page.render("session.html", status=status, session=session, slot_times=slot_times,
                           errors=errors or [], values=values or {}, key=str(uuid.uuid4()),
                           free=[slot for slot in session["slots"] if slot["booked"] < slot["capacity"]])

    def book(self, request: Request, session_id: str) -> Response:
        page = self.page(request)
        if (refused := self._needs(page, PROVIDER_ROLES)) is not None:
            return refused
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        values = {key: request.form.get(key, "").strip()
                  for key in ("slot_id", "upn", "given_name", "family_name", "date_of_birth")}
        errors = [(field, page.gettext(message)) for field, message in BOOKING_REQUIRED if not values[field]]
        if values["date_of_birth"] and not _is_date(values["date_of_birth"]):
            errors.append(("date_of_birth", page.gettext("Enter the date of birth as a date, e.g. 2015-03-14")))
        if not errors:
            answer = page.call("POST", "/api/v1/appointments", {
                "slot_id": values["slot_id"], "child": {key: values[key] for key in
                                                        ("upn", "given_name", "family_name", "date_of_birth")}},
                idempotency_key=request.form.get("key"))
            if answer.ok:
                return page.go(f"/sessions/{quote(session_id, safe='')}#appointments")
            errors = self._refusal(page, answer, BOOKING_FIELDS)
        return self.session_detail(request, session_id, errors=errors, values=values, status=422)

    def outcome(self, request: Request, appointment_id: str, action: str) -> Response:
        page = self.page(request)
        if (refused := self._needs(page, PROVIDER_ROLES)) is not None:
            return refused
        if action not in OUTCOMES:
            return page.render("not_found.html", status=404)
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        session_id = request.form.get("session_id", "")
        body = {}
        if action == "cancel":
            reason = request.form.get("reason", "").strip()
            if not reason:
                return self.session_detail(request, session_id, status=422, errors=[
                    (f"reason-{appointment_id}", page.gettext("Give a reason for cancelling"))])
            body = {"reason": reason}
        answer = page.call("POST", f"/api/v1/appointments/{quote(appointment_id, safe='')}/{action}", body)
        if not answer.ok:
            return self.session_detail(request, session_id, status=answer.status if answer.status < 500 else 502,
                                       errors=self._refusal(page, answer, {}))
        return page.go(f"/sessions/{quote(session_id, safe='')}#appointments")

    def reviews(self, request: Request) -> Response:
        page = self.page(request)
        if (refused := self._needs(page, {"dsl"})) is not None:
            return refused
        answer, kept = page.call("GET", "/api/v1/reviews"), page.call("GET", "/api/v1/family-exemptions")
        for each in (answer, kept):
            if not each.ok:
                return self._failed(page, each)
        return page.render("reviews.html", reviews=list(reversed(answer.body)),
                           exemptions=[e for e in kept.body if e["due"]])

    def out_of_lessons(self, request: Request) -> Response:
        """The host school's pupils out of lessons on a day (`?date=`, today by default): when and where, not why."""
        page = self.page(request)
        if (refused := self._needs(page, SCHOOL_ROLES)) is not None:
            return refused
        wanted = request.args.get("date", "").strip()
        day = wanted or datetime.now(i18n.ZONE).date().isoformat()
        answer = page.call("GET", f"/api/v1/out-of-lessons?date={quote(day, safe='')}") \
            if len(day) == 10 and _is_date(day) else Answer(422)
        if answer.status == 422:   # not a date, or one the gateway will not look up (before 2000, after 2100)
            return page.render("out_of_lessons.html", status=422, day=wanted, pupils=[],
                               errors=[("date", page.gettext("Enter a date, for example 2027-03-02"))])
        if not answer.ok:
            return self._failed(page, answer)
        return page.render("out_of_lessons.html", day=day, pupils=answer.body, errors=[])

    def inbox(self, request: Request) -> Response:
        """The agency's referrals, open ones first, then by urgency, then oldest first.

        The inbox serves what the agency received, not Pont's deadline; within one urgency the
        deadline follows the time it was sent, so the oldest of an urgency is the most pressing.
        """
        page = self.page(request)
        if (refused := self._needs(page, PROVIDER_ROLES)) is not None:
            return refused
        answer = page.call("GET", "/api/v1/inbox/referrals")
        if not answer.ok:
            return self._failed(page, answer)
        return page.render("inbox.html", referrals=sorted(answer.body, key=inbox_order))

    def referrals_list(self, request: Request) -> Response:
        page = self.page(request)
        if (refused := self._needs(page, SCHOOL_ROLES)) is not None:
            return refused
        chosen = request.args.get("status", "")
        if chosen not in REFERRAL_FILTERS:
            chosen = ""
        answer = page.call("GET", "/api/v1/referrals" + (f"?status={chosen}" if chosen else ""))
        if not answer.ok:
            return self._failed(page, answer)
        referrals = sorted(answer.body, key=lambda r: r["history"][0]["at"] if r["history"] else "", reverse=True)
        return page.render("referrals.html", referrals=referrals, chosen=chosen, filters=REFERRAL_FILTERS)

    def referral_new(self, request: Request) -> Response:
        """Raise a referral; sent at once if sharing is allowed, otherwise it waits for consent."""
        page = self.page(request)
        if (refused := self._needs(page, SCHOOL_ROLES)) is not None:
            return refused
        if request.method == "GET":
            return self._referral_form(page, _referral_defaults(), [])
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        values, errors = _referral_submitted(page, request)
        if not errors:
            if request.form.get("action") == "preview":  # what would be shared and what held; nothing is raised
                answer = page.call("POST", "/api/v1/referrals/preview", _referral_body(values))
                if answer.ok:
                    return self._referral_form(page, values, [], preview=answer.body["decisions"])
            else:
                answer = page.call("POST", "/api/v1/referrals", _referral_body(values),
                                   idempotency_key=request.form.get("key"))
                if answer.ok:
                    return page.go(f"/referrals/{quote(answer.body['id'], safe='')}")
            if answer.status == 401:
                return self._failed(page, answer)
            errors = self._refusal(page, answer, NEW_REFERRAL_FIELDS, conflict=REFERRAL_OPEN,
                                   messages=NEW_REFERRAL_MESSAGES)
        return self._referral_form(page, values, errors, status=422)

    def referral_preview(self, request: Request) -> Response:
        """The referral form's live preview (pont.js): what the form as it stands would share and hold;
        204, nothing, while the form is incomplete or the gateway refuses it (sending says why)."""
        page = self.page(request)
        if (refused := self._needs(page, SCHOOL_ROLES)) is not None:
            return refused
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        values, errors = _referral_submitted(page, request)
        answer = None if errors else page.call("POST", "/api/v1/referrals/preview", _referral_body(values))
        if answer is None or not answer.ok:
            return page.finish(Response(status=204))
        return page.render("referral_preview.html", preview=answer.body["decisions"])

    def _referral_form(self, page: Page, values: dict, errors: list, status: int = 200,
                       preview: list | None = None) -> Response:
        agencies = [org for org in self.settings.agencies if not org.startswith("school:")]
        return page.render("referral_new.html", status=status, values=values, errors=errors, agencies=agencies,
                           services=SERVICES, urgencies=URGENCY_ORDER[::-1], categories=tuple(CATEGORY_NAMES),
                           shared_text=SHARED_TEXT, key=str(uuid.uuid4()), dsl="dsl" in page.user["roles"],
                           preview=preview)

    def referral_detail(self, request: Request, referral_id: str, errors: list | None = None,
                        values: dict | None = None, status: int = 200) -> Response:
        """A referral's status, deadline and chronology; for the agency also what was shared with it."""
        page = self.page(request)
        if (refused := self._needs(page, PROVIDER_ROLES | SCHOOL_ROLES)) is not None:
            return refused
        answer = page.call("GET", f"/api/v1/referrals/{quote(referral_id, safe='')}")
        if not answer.ok:
            return self._failed(page, answer)
        received = None
        agency = bool(PROVIDER_ROLES.intersection(page.user["roles"])) and answer.body["to_org"] == page.user["org"]
        if agency:
            inbox = page.call("GET", "/api/v1/inbox/referrals")
            if not inbox.ok:
                return self._failed(page, inbox)
            received = next((item for item in inbox.body if item["id"] == answer.body["id"]), None)
        school = answer.body.get("from_org") == page.user["org"] and bool(SCHOOL_ROLES.intersection(page.user["roles"]))
        return page.render("referral.html", status=status, referral=answer.body, received=received, agency=agency,
                           school=school, errors=errors or [], values=values or {},
                           decline_codes=DECLINE_CODES, close_codes=CLOSE_CODES,
                           consent_recorded=request.args.get("consent") == "recorded")

    def referral_action(self, request: Request, referral_id: str, action: str) -> Response:
        """Accept, decline with a reason, close with an outcome (the agency), or withdraw (the school)."""
        page = self.page(request)
        if action not in REFERRAL_ACTIONS:
            return page.render("not_found.html", status=404) if page.user else page.go("/sign-in")
        if (refused := self._needs(page, REFERRAL_ACTIONS[action])) is not None:
            return refused
        if not csrf_ok(page.session, request.form.get("csrf")):
            return page.render("forbidden.html", status=403)
        body, values = {}, {}
        if action in REFERRAL_NOTES:
            note, code = REFERRAL_NOTES[action]
            values = {note: request.form.get(note, "").strip(), code: request.form.get(code, "")}
            if not values[note]:
                message = _("Give a reason for declining") if action == "decline" else _("Describe the outcome")
                return self.referral_detail(request, referral_id, errors=[(note, page.gettext(message))],
                                            values=values, status=422)
            body = {note: values[note], code: values[code] or None}
        answer = page.call("POST", f"/api/v1/referrals/{quote(referral_id, safe='')}/{action}", body)
        if not answer.ok:
            if answer.status == 401:
                return self._failed(page, answer)
            return self.referral_detail(request, referral_id, values=values,
                                        status=answer.status if answer.status < 500 else 502,
                                        errors=self._refusal(page, answer, REFERRAL_FIELDS,
                                                             conflict=REFERRAL_CONFLICT))
        return page.go(f"/referrals/{quote(referral_id, safe='')}")

    # --- shared ---------------------------------------------------------------------------

    def _needs(self, page: Page, roles: set[str] | None = None) -> Response | None:
        if page.user is None:
            return page.go("/sign-in")
        if roles is not None and not roles.intersection(page.user["roles"]):
            return page.render("forbidden.html", status=403)
        return None

    def _failed(self, page: Page, answer: Answer) -> Response:
        if answer.status == 401:  # the token expired: signed in again, the user comes back to this page
            page.session, page.dirty = self.sessions.load(None), True
            if page.request.method == "GET":
                page.session["next"] = page.request.full_path.rstrip("?")
            return page.go("/sign-in")
        if answer.status in (403, 404):
            return page.render("forbidden.html" if answer.status == 403 else "not_found.html", status=answer.status)
        return page.render("unavailable.html", status=502)

    def _refusal(self, page: Page, answer: Answer, fields: dict[str, str], conflict: str | None = None,
                 messages: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """What the gateway refused, as (field id, message in the page's language).

        The gateway's own messages are in English only, so a field it names gets this page's
        message for that field (`messages`), else a general one, in the page's language.
        """
        if answer.status == 422 and answer.errors:
            found = []
            for error in answer.errors:
                field = fields.get(str(error.get("field", "")))
                general = _("Check this answer") if field else _("Check your answers")
                message = (messages or {}).get(field or "", general)
                found.append((field or "", page.gettext(message)))
            return found
        if answer.status == 409 and conflict:
            return [("", page.gettext(conflict))]
        if answer.status == 409:
            return [("", page.gettext("That could not be done: the room or the slot is taken, the pupil is "
                                      "booked elsewhere then, or the appointment has not started yet."))]
        if answer.status in (403, 404):
            return [("", page.gettext("You cannot do that here."))]
        return [("", page.gettext("Pont could not be reached. Try again in a moment."))]


# gateway field → form field id
SESSION_FIELDS = {name: name for name in ("site", "room", "service", "date", "start", "end", "slot_minutes",
                                          "capacity_per_slot")}
BOOKING_FIELDS = {"slot_id": "slot_id", "child.upn": "upn", "child.given_name": "given_name",
                  "child.family_name": "family_name", "child.date_of_birth": "date_of_birth"}
REFERRAL_FIELDS = {"reason": "reason", "reason_code": "reason_code", "outcome": "outcome",
                   "outcome_code": "outcome_code"}
NEW_REFERRAL_FIELDS = {
    "child.upn": "upn", "child.given_name": "given_name", "child.family_name": "family_name",
    "child.date_of_birth": "date_of_birth", "child": "upn", "to_org": "to_org", "service": "service",
    "urgency": "urgency-routine", "reason": "reason", "details": "details", "share": "share-contact",
    "basis": "basis-consent", "justification": "justification",
    **{f"information.{category}": f"info-{category}" for category in CATEGORY_NAMES},
}
SHARED_TEXT = tuple(category for category in CATEGORY_NAMES if category != "contact")  # contact: the child itself
REFERRAL_REQUIRED = (
    ("upn", _("Enter the pupil's UPN")), ("given_name", _("Enter the pupil's given name")),
    ("family_name", _("Enter the pupil's family name")), ("date_of_birth", _("Enter the pupil's date of birth")),
    ("to_org", _("Choose who the referral is to")), ("reason", _("Enter the reason for the referral")),
    ("details", _("Describe what the school has seen")),
)
NEW_REFERRAL_MESSAGES = {
    "upn": _("This UPN is not valid: check it against the school's records"),
    "date_of_birth": _("Enter a real date of birth in the past"),
    "to_org": _("Choose an agency that takes referrals"),
}
JUSTIFICATION_NEEDED = _("Write why the pupil's safety justifies sharing without consent")
REFERRAL_OPEN = _("This pupil already has an open referral to this service. Follow it from your referrals.")
REFERRAL_CONFLICT = _("That could not be done: the referral has moved on since this page was shown. "
                      "Its status is shown below.")
BOOKING_REQUIRED = (
    ("slot_id", _("Choose a time")), ("upn", _("Enter the pupil's UPN")),
    ("given_name", _("Enter the pupil's given name")), ("family_name", _("Enter the pupil's family name")),
    ("date_of_birth", _("Enter the pupil's date of birth")),
)
SESSION_REQUIRED = (
    ("site", _("Choose the school")), ("room", _("Enter the room")), ("date", _("Enter the date")),
    ("start", _("Enter the start time")), ("end", _("Enter the end time")),
    ("slot_minutes", _("Enter the length of each slot in minutes")),
    ("capacity_per_slot", _("Enter how many pupils each slot takes")),
)


def _session_body(values: dict, gettext) -> tuple[dict, list[tuple[str, str]]]:
    errors = [(field, gettext(message)) for field, message in SESSION_REQUIRED if not values[field]]
    if values["date"] and not _is_date(values["date"]):
        errors.append(("date", gettext("Enter the date as a date, e.g. 2027-03-02")))
    for field in ("start", "end"):
        if values[field] and not _is_time(values[field]):
            errors.append((field, gettext("Enter a time, e.g. 09:00")))
    for field in ("slot_minutes", "capacity_per_slot"):
        if values[field] and not values[field].isdigit():
            errors.append((field, gettext("Enter a whole number")))
    if errors:
        return {}, errors
    body = dict(values, slot_minutes=int(values["slot_minutes"]),
                capacity_per_slot=int(values["capacity_per_slot"]))
    return body, []


def _referral_defaults() -> dict:
    return {"upn": "", "given_name": "", "family_name": "", "date_of_birth": "", "to_org": "",
            "service": "school_nursing", "urgency": "routine", "reason": "", "details": "", "share": ["contact"],
            "basis": "consent", "justification": "", **{f"info-{category}": "" for category in SHARED_TEXT}}


def _referral_submitted(page: Page, request: Request) -> tuple[dict, list]:
    """The referral form's values as submitted, and what it lacks (field id, message in the page's language)."""
    values = _referral_defaults()
    values.update({key: request.form.get(key, "").strip() for key in values if key != "share"})
    values["share"] = [c for c in request.form.getlist("share") if c in CATEGORY_NAMES]
    if values["basis"] != "safeguarding" or "dsl" not in page.user["roles"]:  # only a DSL shares without consent
        values["basis"] = "consent"
    errors = [(field, page.gettext(message)) for field, message in REFERRAL_REQUIRED if not values[field]]
    if values["basis"] == "safeguarding" and not values["justification"]:
        errors.append(("justification", page.gettext(JUSTIFICATION_NEEDED)))
    if values["date_of_birth"] and not _is_date(values["date_of_birth"]):
        errors.append(("date_of_birth", page.gettext("Enter the date of birth as a date, e.g. 2015-03-14")))
    if not values["share"]:
        errors.append(("share-contact", page.gettext("Choose at least one kind of information to share")))
    return values, errors


def _referral_body(values: dict) -> dict:
    information = {category: values[f"info-{category}"] for category in SHARED_TEXT
                   if category in values["share"] and values[f"info-{category}"]}
    return {"child": {key: values[key] for key in ("upn", "given_name", "family_name", "date_of_birth")},
            "to_org": values["to_org"], "service": values["service"], "urgency": values["urgency"],
            "reason": values["reason"], "details": values["details"], "share": values["share"],
            "information": information, "basis": values["basis"],
            **({"justification": values["justification"]} if values["basis"] == "safeguarding" else {})}


def inbox_order(item: dict) -> tuple:
    referral = (item.get("content") or {}).get("referral") or {}
    urgency = referral.get("urgency")
    rank = URGENCY_ORDER.index(urgency) if urgency in URGENCY_ORDER else len(URGENCY_ORDER)
    return (item["status"] in ("declined", "closed"), item["status"] != "received", rank, item["received_at"])


def _local(path) -> str:
    """A path on these pages to go back to after signing in; "/" for anything else (never another site)."""
    if isinstance(path, str) and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
        return True
    except ValueError:
        return False


def _is_time(value: str) -> bool:
    try:
        time.fromisoformat(value)
        return True
    except ValueError:
        return False


