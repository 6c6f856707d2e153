"""Families' pages, and the school's and the DSL's part in them.

- The school invites a pupil's parent or carer, or the young person (`/family-invites/new`): the
  one-time code is shown once, to be passed on through the school's own channel.
- A family member (role `family`): their children (`/family`), where a code links another; a
  child's page (`/family/children/{ref}`): every consent they may see, each active one with its
  withdraw button, and what was shared, in plain words; how Pont tells them (`/family/preferences`).
- The DSL keeps one disclosure out of the family's view (`/children/{ref}/shared/{id}/exempt`).
- In development, with no identity provider, a family member signs in by a link sent to their email.

Every one reads and writes through the gateway's `/api/v1/family/…` routes (and
`/api/v1/disclosures/{id}/family-exemption`) with the signed-in user's token.
"""
from __future__ import annotations

import re
import smtplib
from datetime import date, timedelta
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from pont_shared.auth import FAMILY_ROLE, mint

from .consent_pages import CHILD_REF, CONSENT_STATUS_NAMES, EVIDENCE_NAMES, PURPOSE_NAMES, RELATIONSHIP_NAMES
from .cookies import csrf_ok
from .ledger_pages import BASIS_NAMES
from .pages import CATEGORY_NAMES, SCHOOL_ROLES, Page, Web, _, _is_date

FAMILY_ROLES = {FAMILY_ROLE}
ENTRY_ID = re.compile(r"^[0-9a-f-]{36}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ORG_KIND_NAMES = {"school": _("School"), "health": _("Health service"), "social_care": _("Social care"),
                  "youth_work": _("Youth work"), "local_authority": _("Local authority")}
NAMES = {"purpose": PURPOSE_NAMES, "relationship": RELATIONSHIP_NAMES, "evidence": EVIDENCE_NAMES,
         "status": CONSENT_STATUS_NAMES, "category": CATEGORY_NAMES, "basis": BASIS_NAMES,
         "org_kind": ORG_KIND_NAMES}
INVITE_FIELDS = {"child.upn": "upn", "child.given_name": "given_name", "child.family_name": "family_name",
                 "child.date_of_birth": "date_of_birth", "child": "upn", "relationship": "relationship-parent",
                 "competence_assessed": "competence_assessed"}
INVITE_MESSAGES = {
    "upn": _("This UPN is not valid: check it against the school's records"),
    "date_of_birth": _("Enter a real date of birth in the past"),
    "competence_assessed": _("A young person under 16 can have their own account only after their competence "
                             "is assessed"),
}
INVITE_REQUIRED = (
    ("upn", _("Enter the pupil's UPN")), ("given_name", _("Enter the pupil's given name")),
    ("family_name", _("Enter the pupil's family name")), ("date_of_birth", _("Enter the pupil's date of birth")),
)
CODE_UNKNOWN = _("That code does not work: check it, or ask the school for a new one. A code works once, "
                 "for 14 days.")


def organisation(page: Page, org: str | None) -> str:
    """An organisation in plain words: its kind in the page's language, then its own name (its code)."""
    if not org:
        return "–"
    kind, _sep, code = org.partition(":")
    return f"{page.named(ORG_KIND_NAMES, kind)} ({code})"


# --- a family's sign-in by email (development) ----------------------------------------

LINK_SUBJECT = _("Sign in to Pont")
LINK_BODY = _("Open this link within 15 minutes to sign in to Pont's family pages:\n\n%(link)s\n\n"
              "If you did not ask for it, ignore this email.")


def email_sign_in(web: Web, request: Request) -> Response:
    """Development, no identity provider: send a family member a sign-in link."""
    page = web.page(request)
    if not web.development or web.identity_provider is not None:
        return page.render("not_found.html", status=404)
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values = {key: request.form.get(key, "").strip() for key in ("email", "school")}
    errors = []
    if not EMAIL.match(values["email"]):
        errors.append(("email", page.gettext("Enter your email address, like name@example.com")))
    if values["school"] not in web.schools:
        errors.append(("school", page.gettext("Choose your child's school")))
    if errors or web.mail is None:
        errors = errors or [("", page.gettext("Email cannot be sent from here. Choose a demonstration user."))]
        return page.render("sign_in.html", status=422, users=web.demo_users, schools=web.schools, values=values,
                           errors=errors)
    link = f"{request.host_url}sign-in/email?token={quote(web.sign_in_links.make(values['email'], values['school']))}"
    try:
        web.mail(values["email"], page.gettext(LINK_SUBJECT), page.gettext(LINK_BODY) % {"link": link})
    except (OSError, smtplib.SMTPException):
        return page.render("unavailable.html", status=502)
    return page.render("sign_in_sent.html")


def email_link(web: Web, request: Request) -> Response:
    """The link from the email: signed in as that family member, of that school, in a new session."""
    page = web.page(request)
    if not web.development or web.identity_provider is not None:
        return page.render("not_found.html", status=404)
    used = web.sign_in_links.use(request.args.get("token", ""))
    if used is None:
        return page.render("sign_in_failed.html", status=403, reachable=True)
    member, school = used
    page.session = {**web.sessions.load(None), "user": {
        "key": "email", "sub": member, "org": school, "roles": [FAMILY_ROLE], "label": _("Parent or carer"),
        "token": mint(member, school, [FAMILY_ROLE], web.settings.jwt_secret)}}
    page.dirty = True
    return page.go("/family")


# --- the school ----------------------------------------------------------------------

def invite(web: Web, request: Request) -> Response:
    page = web.page(request)
    if (refused := web._needs(page, SCHOOL_ROLES)) is not None:
        return refused
    values = {"upn": "", "given_name": "", "family_name": "", "date_of_birth": "", "relationship": "parent",
              "competence_assessed": ""}
    if request.method == "GET":
        return page.render("family_invite.html", values=values, errors=[], created=None, names=NAMES)
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values.update({key: request.form.get(key, "").strip() for key in values})
    errors = [(field, page.gettext(message)) for field, message in INVITE_REQUIRED if not values[field]]
    if values["date_of_birth"] and not _is_date(values["date_of_birth"]):
        errors.append(("date_of_birth", page.gettext("Enter the date of birth as a date, e.g. 2015-03-14")))
    if values["relationship"] not in RELATIONSHIP_NAMES:
        errors.append(("relationship-parent", page.gettext("Choose who you are inviting")))
    if not errors:
        answer = page.call("POST", "/api/v1/family/invites", {
            "child": {key: values[key] for key in ("upn", "given_name", "family_name", "date_of_birth")},
            "relationship": values["relationship"], "competence_assessed": values["competence_assessed"] == "yes"})
        if answer.ok:
            return page.render("family_invite.html", values=values, errors=[], created=answer.body, names=NAMES,
                               status=201)
        if answer.status == 401:
            return web._failed(page, answer)
        errors = web._refusal(page, answer, INVITE_FIELDS, messages=INVITE_MESSAGES)
    return page.render("family_invite.html", status=422, values=values, errors=errors, created=None, names=NAMES)


def exempt(web: Web, request: Request, child_ref: str, entry_id: str) -> Response:
    """The DSL keeps one disclosure from the family: a reason and a review date, then back to the ledger."""
    page = web.page(request)
    if (refused := web._needs(page, {"dsl"})) is not None:
        return refused
    if not CHILD_REF.match(child_ref) or not ENTRY_ID.match(entry_id):
        return page.render("not_found.html", status=404)
    values = {"reason": "", "review_on": (date.today() + timedelta(days=90)).isoformat()}
    if request.method == "GET":
        return page.render("family_exempt.html", child_ref=child_ref, entry_id=entry_id, values=values, errors=[])
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values.update({key: request.form.get(key, "").strip() for key in values})
    errors = []
    if not values["reason"]:
        errors.append(("reason", page.gettext("Write why telling the family could put the child at risk")))
    if not _is_date(values["review_on"]):
        errors.append(("review_on", page.gettext("Enter a review date within the next year")))
    if not errors:
        answer = page.call("POST", f"/api/v1/disclosures/{quote(entry_id, safe='')}/family-exemption", values)
        if answer.ok or answer.status == 409:   # marked now, or before: either way it is kept from the family
            return page.go(f"/children/{quote(child_ref, safe='')}/shared")
        if answer.status in (401, 404):
            return web._failed(page, answer)
        errors = web._refusal(page, answer, {"reason": "reason", "review_on": "review_on"},
                              messages={"review_on": _("Enter a review date within the next year")})
    return page.render("family_exempt.html", status=422, child_ref=child_ref, entry_id=entry_id, values=values,
                       errors=errors)


def review_exemption(web: Web, request: Request, exemption_id: str) -> Response:
    """The DSL's review, from the review queue: keep it from the family until a new date, or lift it."""
    page = web.page(request)
    if (refused := web._needs(page, {"dsl"})) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    review = {key: request.form.get(key, "").strip() for key in ("decision", "reason", "review_on")}
    if review["decision"] == "lift":
        review.pop("review_on")
    answer = page.call("POST", f"/api/v1/family-exemptions/{quote(exemption_id, safe='')}/review", review)
    if answer.ok:
        return page.go("/reviews?done=reviewed")
    if answer.status in (401, 404):
        return web._failed(page, answer)
    return page.render("unavailable.html", status=502) if answer.status >= 500 else page.go(
        f"/reviews?problem={quote(exemption_id, safe='')}")


# --- the family ----------------------------------------------------------------------

def children(web: Web, request: Request, errors: list | None = None, code: str = "", status: int = 200) -> Response:
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    answer = page.call("GET", "/api/v1/family/children")
    if not answer.ok:
        return web._failed(page, answer)
    return page.render("family.html", status=status, children=answer.body, errors=errors or [], code=code,
                       names=NAMES)


def link(web: Web, request: Request) -> Response:
    """Redeem the code the school gave: linked, the child's page; refused, the children's page says why."""
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    code = request.form.get("code", "").strip()
    if not code:
        return children(web, request, [("code", page.gettext("Enter the code the school gave you"))], status=422)
    answer = page.call("POST", "/api/v1/family/links", {"code": code})
    if answer.ok:
        return page.go(f"/family/children/{quote(answer.body['child_ref'], safe='')}")
    if answer.status == 409:   # linked already: their page
        return page.go("/family")
    if answer.status in (404, 422):
        return children(web, request, [("code", page.gettext(CODE_UNKNOWN))], code=code, status=422)
    return web._failed(page, answer)


def child(web: Web, request: Request, child_ref: str, errors: list | None = None, status: int = 200) -> Response:
    """A child's consents and what was shared about them, for their family."""
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    about = f"/api/v1/family/children/{quote(child_ref, safe='')}"
    mine, asked, consents, shared = (page.call("GET", path) for path in (
        "/api/v1/family/children", about + "/consent-requests", about + "/consents", about + "/shared"))
    for answer in (mine, asked, consents, shared):
        if not answer.ok:
            return web._failed(page, answer)
    [linked] = [c for c in mine.body if c["child_ref"] == child_ref] or [None]
    if linked is None:
        return page.render("not_found.html", status=404)
    return page.render("family_child.html", status=status, child=linked, errors=errors or [], names=NAMES,
                       asked=asked.body,
                       consents=sorted(consents.body, key=lambda c: c["recorded_at"], reverse=True),
                       shared=sorted(shared.body, key=lambda e: e["at"], reverse=True),
                       organisation=lambda org: organisation(page, org))


def withdraw(web: Web, request: Request, consent_id: str) -> Response:
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    child_ref = request.form.get("child_ref", "")
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    reason = request.form.get("reason", "").strip()
    answer = page.call("POST", f"/api/v1/family/consents/{quote(consent_id, safe='')}/withdraw",
                       {"reason": reason} if reason else {})
    if answer.ok:
        return page.go(f"/family/children/{quote(child_ref, safe='')}?done=withdrawn")
    if answer.status == 401:
        return web._failed(page, answer)
    return child(web, request, child_ref, status=answer.status if answer.status < 500 else 502,
                 errors=web._refusal(page, answer, {"reason": f"reason-{consent_id}"},
                                     conflict=_("That consent has already ended. Its status is shown below.")))


def answer_request(web: Web, request: Request, request_id: str, action: str) -> Response:
    """Give the consent asked for, or decline it; back to the child's page."""
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    if action not in ("give", "decline"):
        return page.render("not_found.html", status=404)
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    child_ref = request.form.get("child_ref", "")
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    answer = page.call("POST", f"/api/v1/family/consent-requests/{quote(request_id, safe='')}/{action}",
                       {} if action == "give" else None)
    if answer.ok:
        done = "given" if action == "give" else "declined"
        return page.go(f"/family/children/{quote(child_ref, safe='')}?done={done}")
    if answer.status == 401:
        return web._failed(page, answer)
    return child(web, request, child_ref, status=answer.status if answer.status < 500 else 502,
                 errors=web._refusal(page, answer, {}, conflict=_("You have answered that already.")))


def preferences(web: Web, request: Request) -> Response:
    page = web.page(request)
    if (refused := web._needs(page, FAMILY_ROLES)) is not None:
        return refused
    if request.method == "GET":
        answer = page.call("GET", "/api/v1/family/preferences")
        if not answer.ok:
            return web._failed(page, answer)
        values = {"channel": answer.body["channel"], "email": answer.body.get("email") or "",
                  "language": answer.body["language"]}
        return page.render("family_preferences.html", values=values, errors=[], saved="saved" in request.args)
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values = {key: request.form.get(key, "").strip() for key in ("channel", "email", "language")}
    errors = []
    if values["channel"] not in ("email", "none"):
        errors.append(("channel-email", page.gettext("Choose how we should tell you")))
    if values["channel"] == "email" and "@" not in values["email"]:
        errors.append(("email", page.gettext("Enter your email address, like name@example.com")))
    if values["language"] not in ("cy", "en"):
        errors.append(("language-cy", page.gettext("Choose a language")))
    if not errors:
        body = {"channel": values["channel"], "language": values["language"],
                **({"email": values["email"]} if values["channel"] == "email" else {})}
        answer = page.call("PUT", "/api/v1/family/preferences", body)
        if answer.ok:
            return page.go("/family/preferences?saved=1")
        if answer.status == 401:
            return web._failed(page, answer)
        errors = web._refusal(page, answer, {"email": "email", "channel": "channel-email", "language": "language-cy"},
                              messages={"email": _("Enter your email address, like name@example.com")})
    return page.render("family_preferences.html", status=422, values=values, errors=errors, saved=False)
