"""The administrator's pages: information-sharing agreements, listed, proposed, approved and revoked.

No sharing rests on anything but an agreement in force between the two organisations (and then a
basis), so these pages are where an administrator sees which are in force, which wait for a
party's approval, and proposes or revokes one. Only the gateway's public API is called.
"""
from __future__ import annotations

import uuid
from datetime import date
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from .cookies import csrf_ok
from .pages import CATEGORY_NAMES, Page, Web

ADMINS = {"admin"}
PURPOSES = ("referral", "appointment", "transition", "team_around_family")


def _(message: str) -> str:
    """Marks a string for the catalogue; it is translated where it is shown."""
    return message


PURPOSE_NAMES = {"referral": _("Referrals"), "appointment": _("Appointments"), "transition": _("Moving school"),
                 "team_around_family": _("Team around the family")}
AGREEMENT_STATUS_NAMES = {"proposed": _("Waiting for approval"), "approved": _("Approved, not yet in force"),
                          "active": _("In force"), "expired": _("Expired"), "revoked": _("Revoked")}
AGREEMENT_FIELDS = {"parties": "parties", "purposes": "purposes", "categories": "categories",
                    "valid_from": "valid_from", "valid_to": "valid_to"}
AGREEMENT_MESSAGES = {"parties": _("Choose at least two organisations, each only once"),
                      "valid_to": _("The agreement must end after it starts")}


def agreements_list(web: Web, request: Request, errors: list | None = None, values: dict | None = None,
                    status: int = 200) -> Response:
    """The agreements the administrator's organisation is a party to or proposed, newest first."""
    page = web.page(request)
    if (refused := web._needs(page, ADMINS)) is not None:
        return refused
    answer = page.call("GET", "/api/v1/agreements")
    if not answer.ok:
        return web._failed(page, answer)
    return page.render("agreements.html", status=status, agreements=list(reversed(answer.body)),
                       errors=errors or [], values=values or {}, helpers=_helpers(), done=request.args.get("done", ""))


def agreement_new(web: Web, request: Request) -> Response:
    """Propose an agreement between organisations, for purposes and kinds of information, between dates."""
    page = web.page(request)
    if (refused := web._needs(page, ADMINS)) is not None:
        return refused
    values = {"parties": [], "purposes": [], "categories": [], "valid_from": "", "valid_to": ""}
    if request.method == "GET":
        return _form(web, page, values, [])
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values = {"parties": [org for org in request.form.getlist("parties") if org in web.settings.agencies],
              "purposes": [p for p in request.form.getlist("purposes") if p in PURPOSES],
              "categories": [c for c in request.form.getlist("categories") if c in CATEGORY_NAMES],
              "valid_from": request.form.get("valid_from", "").strip(),
              "valid_to": request.form.get("valid_to", "").strip()}
    errors = agreement_errors(values, page.gettext)
    if not errors:
        answer = page.call("POST", "/api/v1/agreements", values, idempotency_key=request.form.get("key"))
        if answer.ok:
            return page.go("/agreements?" + urlencode({"done": "proposed"}))
        if answer.status == 401:
            return web._failed(page, answer)
        errors = [(_first_box(field), message) for field, message in
                  web._refusal(page, answer, AGREEMENT_FIELDS, messages=AGREEMENT_MESSAGES)]
    return _form(web, page, values, errors, status=422)


def _first_box(field: str) -> str:
    """A list's error links to its first checkbox (the field a keyboard user lands on)."""
    return {"parties": "parties-0", "purposes": f"purposes-{PURPOSES[0]}",
            "categories": f"categories-{next(iter(CATEGORY_NAMES))}"}.get(field, field)


def agreement_errors(values: dict, gettext) -> list[tuple[str, str]]:
    errors = []
    if len(values["parties"]) < 2:
        errors.append((_first_box("parties"), gettext("Choose at least two organisations")))
    if not values["purposes"]:
        errors.append((_first_box("purposes"), gettext("Choose at least one purpose")))
    if not values["categories"]:
        errors.append((_first_box("categories"), gettext("Choose at least one kind of information")))
    dates = {}
    for field, missing in (("valid_from", _("Enter the date the agreement starts")),
                           ("valid_to", _("Enter the date the agreement ends"))):
        if not values[field]:
            errors.append((field, gettext(missing)))
            continue
        try:
            dates[field] = date.fromisoformat(values[field])
        except ValueError:
            errors.append((field, gettext("Enter the date as a date, e.g. 2027-03-02")))
    if len(dates) == 2 and dates["valid_to"] < dates["valid_from"]:
        errors.append(("valid_to", gettext(AGREEMENT_MESSAGES["valid_to"])))
    return errors


def _form(web: Web, page: Page, values: dict, errors: list, status: int = 200) -> Response:
    return page.render("agreement_new.html", status=status, values=values, errors=errors,
                       organisations=web.settings.agencies, purposes=PURPOSES, categories=tuple(CATEGORY_NAMES),
                       helpers=_helpers(), key=str(uuid.uuid4()))


def agreement_action(web: Web, request: Request, agreement_id: str, action: str) -> Response:
    """Approve for the administrator's organisation, or revoke with a reason."""
    page = web.page(request)
    if action not in ("approve", "revoke"):
        return page.render("not_found.html", status=404) if page.user else page.go("/sign-in")
    if (refused := web._needs(page, ADMINS)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    body, values = {}, {}
    if action == "revoke":
        reason = request.form.get("reason", "").strip()
        values = {"reason": reason, "agreement": agreement_id}
        if not reason:
            return agreements_list(web, request, errors=[(f"reason-{agreement_id}",
                                                          page.gettext("Give a reason for revoking"))],
                                   values=values, status=422)
        body = {"reason": reason}
    answer = page.call("POST", f"/api/v1/agreements/{quote(agreement_id, safe='')}/{action}", body)
    if answer.status == 401:
        return web._failed(page, answer)
    if not answer.ok:
        conflict = _("That could not be done: the agreement has been revoked. Its status is shown below.")
        return agreements_list(web, request, values=values, status=answer.status if answer.status < 500 else 502,
                               errors=web._refusal(page, answer, {}, conflict=conflict))
    return page.go("/agreements?" + urlencode({"done": "approved" if action == "approve" else "revoked"}))


def _helpers() -> dict:
    return {"purpose_names": PURPOSE_NAMES, "status_names": AGREEMENT_STATUS_NAMES, "category_names": CATEGORY_NAMES}
