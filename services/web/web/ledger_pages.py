"""What was shared about a child, with whom and why: the disclosure ledger as the DSL (or an admin)
of an organisation may read it — the disclosures it made or received, and the withdrawals that
restricted them — newest first, through `GET /api/v1/children/{child_ref}/disclosures`.
"""
from __future__ import annotations

from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from .consent_pages import CHILD_REF, PURPOSE_NAMES
from .pages import CATEGORY_NAMES, Web, _

LEDGER_ROLES = {"dsl", "admin"}
BASIS_NAMES = {"consent": _("Consent"), "safeguarding": _("Safeguarding: the pupil was at risk"),
               "legal_obligation": _("A legal obligation")}
KIND_NAMES = {"disclosure": _("Shared"), "withdrawal": _("Consent withdrawn"),
              "family_exemption": _("Kept from the family")}
NAMES = {"basis": BASIS_NAMES, "kind": KIND_NAMES, "purpose": PURPOSE_NAMES, "category": CATEGORY_NAMES}


def child_shared(web: Web, request: Request, child_ref: str) -> Response:
    page = web.page(request)
    if (refused := web._needs(page, LEDGER_ROLES)) is not None:
        return refused
    if not CHILD_REF.match(child_ref):
        return page.render("not_found.html", status=404)
    answer = page.call("GET", f"/api/v1/children/{quote(child_ref, safe='')}/disclosures")
    if not answer.ok:
        return web._failed(page, answer)
    entries = sorted(answer.body, key=lambda entry: entry["seq"], reverse=True)
    kept = {entry["basis_ref"] for entry in entries if entry["kind"] == "family_exemption"}
    return page.render("child_shared.html", child_ref=child_ref, entries=entries, names=NAMES, kept=kept)
