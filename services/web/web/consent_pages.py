"""A pupil's pages: find a pupil the school has referred; record the consent a parent, carer or young
person gave, list a child's consents, withdraw one.

Like every page, each reads and writes through the gateway's public API (`/api/v1/consents`,
`/api/v1/children/{child_ref}/consents`) with the signed-in user's token. A consent recorded for
a referral that waits for it is prefilled from that referral; the referral is released by the
consent's event, not by this page.
"""
from __future__ import annotations

import re
import uuid
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from pont_shared.auth import ORG_PATTERN

from .cookies import csrf_ok
from .pages import CATEGORY_NAMES, SCHOOL_ROLES, Page, Web, _, _is_date

CONSENT_ROLES = {"school_staff", "dsl", "school_nurse"}
PUPIL = ("upn", "given_name", "family_name", "date_of_birth")
PURPOSE_NAMES = {"referral": _("Referrals"), "appointment": _("Appointments"), "transition": _("Moving school"),
                 "team_around_family": _("Team around the family")}
RELATIONSHIP_NAMES = {"parent": _("Parent"), "carer": _("Carer"), "self": _("The young person")}
EVIDENCE_NAMES = {"written": _("In writing"), "verbal": _("Spoken"), "portal": _("Through the family portal")}
CONSENT_STATUS_NAMES = {"active": _("Active"), "withdrawn": _("Withdrawn"), "expired": _("Expired")}
CHILD_REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
UPN_LIKE = re.compile(r"^[A-Za-z][0-9]{12}$")  # a letter and 12 digits: a UPN, not a name
CONSENT_REQUIRED = (
    ("upn", _("Enter the pupil's UPN")), ("given_name", _("Enter the pupil's given name")),
    ("family_name", _("Enter the pupil's family name")), ("date_of_birth", _("Enter the pupil's date of birth")),
    ("given_by_name", _("Enter the name of the person who gave consent")),
)
# gateway field → form field id
CONSENT_FIELDS = {
    "child.upn": "upn", "child.given_name": "given_name", "child.family_name": "family_name",
    "child.date_of_birth": "date_of_birth", "child": "upn", "given_by.name": "given_by_name",
    "given_by.relationship": "relationship-parent", "competence_assessed": "competence_assessed",
    "recipients": "recipient-0", "purposes": "purpose-referral", "categories": "category-contact",
    "expires_on": "expires_on", "evidence": "evidence-written",
}
CONSENT_MESSAGES = {
    "upn": _("This UPN is not valid: check it against the school's records"),
    "date_of_birth": _("Enter a real date of birth in the past"),
    "competence_assessed": _("A young person under 16 can consent only after their competence is assessed"),
    "expires_on": _("Enter a date in the future, or leave it empty"),
}
WITHDRAWN_ALREADY = _("That consent has already ended. Its status is shown below.")


def find_pupil(web: Web, request: Request) -> Response:
    """Find a pupil the school has referred, by UPN or by name (`?q=`)."""
    page = web.page(request)
    if (refused := web._needs(page, SCHOOL_ROLES)) is not None:
        return refused
    wanted = request.args.get("q", "").strip()
    if not wanted:
        return page.render("pupils.html", wanted="", pupils=None, errors=[])
    by = "upn" if UPN_LIKE.match(wanted) else "name"
    answer = page.call("GET", f"/api/v1/children?{by}={quote(wanted.upper() if by == 'upn' else wanted, safe='')}")
    if answer.status == 422:
        message = _("This UPN is not valid: check it against the school's records") if by == "upn" else \
            _("Enter at least two letters of a name, or a whole UPN")
        return page.render("pupils.html", status=422, wanted=wanted, pupils=None, errors=[("q", page.gettext(message))])
    if not answer.ok:
        return web._failed(page, answer)
    return page.render("pupils.html", wanted=wanted, pupils=answer.body, errors=[])


def consent_new(web: Web, request: Request) -> Response:
    """Record consent; `?referral=` prefills it from a referral that waits for consent, and returns there."""
    page = web.page(request)
    if (refused := web._needs(page, CONSENT_ROLES)) is not None:
        return refused
    values = {**dict.fromkeys(PUPIL, ""), "given_by_name": "", "relationship": "parent", "competence_assessed": "",
              "recipients": [], "purposes": ["referral"], "categories": ["contact"], "expires_on": "",
              "evidence": "written", "referral": ""}
    if request.method == "GET":
        referral_id = request.args.get("referral", "")
        if referral_id:
            answer = page.call("GET", f"/api/v1/referrals/{quote(referral_id, safe='')}")
            if not answer.ok:
                return web._failed(page, answer)
            referral = answer.body
            values.update({key: str((referral.get("child") or {}).get(key, "")) for key in PUPIL},
                          recipients=[referral["to_org"]], purposes=["referral"], referral=referral["id"],
                          categories=list(referral.get("requested_categories") or ["contact"]))
        return _consent_form(web, page, values, [])
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    lists = {"recipients": ORG_PATTERN.match, "purposes": PURPOSE_NAMES.__contains__,
             "categories": CATEGORY_NAMES.__contains__}
    values.update({key: request.form.get(key, "").strip() for key in values if key not in lists})
    values.update({key: [v for v in request.form.getlist(key) if allowed(v)] for key, allowed in lists.items()})
    errors = consent_errors(values, page.gettext)
    if not errors:
        answer = page.call("POST", "/api/v1/consents", consent_body(values), idempotency_key=request.form.get("key"))
        if answer.ok:
            if values["referral"]:
                return page.go(f"/referrals/{quote(values['referral'], safe='')}?consent=recorded")
            return page.go(f"/children/{quote(answer.body['child_ref'], safe='')}/consents")
        if answer.status == 401:
            return web._failed(page, answer)
        errors = web._refusal(page, answer, CONSENT_FIELDS, messages=CONSENT_MESSAGES)
    return _consent_form(web, page, values, errors, status=422)


def _recipients(web: Web, chosen: list[str]) -> list[str]:
    """The organisations consent may name: every agency but schools, and any the referral names."""
    agencies = [org for org in web.settings.agencies if not org.startswith("school:")]
    return agencies + [org for org in chosen if org not in agencies]


def _consent_form(web: Web, page: Page, values: dict, errors: list, status: int = 200) -> Response:
    return page.render("consent_new.html", status=status, values=values, errors=errors,
                       recipients=_recipients(web, values["recipients"]), purposes=tuple(PURPOSE_NAMES),
                       categories=tuple(CATEGORY_NAMES), relationships=tuple(RELATIONSHIP_NAMES),
                       evidence=tuple(EVIDENCE_NAMES), names=NAMES, key=str(uuid.uuid4()))


def consent_errors(values: dict, gettext) -> list[tuple[str, str]]:
    """What the form lacks before the gateway is asked, as (field id, message)."""
    errors = [(field, gettext(message)) for field, message in CONSENT_REQUIRED if not values[field]]
    for field in ("date_of_birth", "expires_on"):
        if values[field] and not _is_date(values[field]):
            errors.append((field, gettext("Enter the date as a date, e.g. 2027-03-02")))
    if values["relationship"] not in RELATIONSHIP_NAMES:
        errors.append(("relationship-parent", gettext("Choose who gave consent")))
    if values["evidence"] not in EVIDENCE_NAMES:
        errors.append(("evidence-written", gettext("Choose how consent was given")))
    if not values["recipients"]:
        errors.append(("recipient-0", gettext("Choose at least one organisation")))
    if not values["purposes"]:
        errors.append(("purpose-referral", gettext("Choose at least one purpose")))
    if not values["categories"]:
        errors.append(("category-contact", gettext("Choose at least one kind of information")))
    return errors


def consent_body(values: dict) -> dict:
    body = {"child": {key: values[key] for key in PUPIL},
            "given_by": {"name": values["given_by_name"], "relationship": values["relationship"]},
            "competence_assessed": values["competence_assessed"] == "yes", "recipients": values["recipients"],
            "purposes": values["purposes"], "categories": values["categories"], "evidence": values["evidence"]}
    if values["expires_on"]:
        body["expires_on"] = values["expires_on"]
    return body


def child_consents(web: Web, request: Request, child_ref: str, errors: list | None = None,
                   values: dict | None = None, status: int = 200) -> Response:
    """A child's consents that the caller's organisation recorded or is named in, newest first; and,
    for the school, its referrals for the child."""
    page = web.page(request)
    if (refused := web._needs(page, CONSENT_ROLES)) is not None:
        return refused
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    answer = page.call("GET", f"/api/v1/children/{quote(child_ref, safe='')}/consents")
    if answer.status == 404:  # nothing recorded for this child that the caller's organisation may see
        consents = []
    elif not answer.ok:
        return web._failed(page, answer)
    else:
        consents = sorted(answer.body, key=lambda c: c["recorded_at"], reverse=True)
    referrals = []
    if SCHOOL_ROLES.intersection(page.user["roles"]):
        listed = page.call("GET", f"/api/v1/referrals?child_ref={quote(child_ref, safe='')}")
        if not listed.ok:
            return web._failed(page, listed)
        referrals = listed.body
    return page.render("consents.html", status=status, child_ref=child_ref, consents=consents, referrals=referrals,
                       names=NAMES, errors=errors or [], values=values or {})


def withdraw_consent(web: Web, request: Request, consent_id: str) -> Response:
    """Withdraw a consent with a reason; back to the child's consents."""
    page = web.page(request)
    if (refused := web._needs(page, CONSENT_ROLES)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    child_ref = request.form.get("child_ref", "")
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    field = f"reason-{consent_id}"
    reason = request.form.get("reason", "").strip()
    if not reason:
        return child_consents(web, request, child_ref, status=422,
                              errors=[(field, page.gettext("Give the reason for withdrawing"))])
    answer = page.call("POST", f"/api/v1/consents/{quote(consent_id, safe='')}/withdraw", {"reason": reason})
    if not answer.ok:
        if answer.status == 401:
            return web._failed(page, answer)
        return child_consents(web, request, child_ref, values={field: reason},
                              status=answer.status if answer.status < 500 else 502,
                              errors=web._refusal(page, answer, {"reason": field}, conflict=WITHDRAWN_ALREADY))
    return page.go(f"/children/{quote(child_ref, safe='')}/consents")


NAMES = {"purpose": PURPOSE_NAMES, "relationship": RELATIONSHIP_NAMES, "evidence": EVIDENCE_NAMES,
         "status": CONSENT_STATUS_NAMES, "category": CATEGORY_NAMES}
