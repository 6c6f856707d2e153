"""A Year 6 class for the transition journeys: its pupils, its CSV as a school's MIS saves it, and
what the schools must hold before it can be sent (an agreement for the transition purpose and each
parent's consent, recorded through the gateway's public API)."""
from __future__ import annotations

import random
from datetime import date, timedelta

import requests

from pont_shared.identity import make_upn
from pont_shared.testing import bearer

CLASS_SIZE, FULLY_CONSENTED = 28, 20
CATEGORIES = ["education", "attendance", "aln", "health_wellbeing"]


def post(gateway: str, path: str, who: dict, body: dict) -> dict:
    response = requests.post(gateway + path, json=body, headers=who, timeout=30)
    assert response.status_code in (200, 201), response.text
    return response.json()


def pupil(n: int) -> dict:
    return {"upn": make_upn(random.randrange(10**8, 10**9)), "given_name": f"Disgybl{n}",
            "family_name": ("Jones", "Davies", "Williams", "Evans", "Thomas", "Roberts", "Hughes")[n % 7],
            "date_of_birth": f"2015-{n % 12 + 1:02d}-{n % 27 + 1:02d}"}


def as_csv(pupils: list[dict]) -> str:
    lines = ["upn,given_name,family_name,date_of_birth,gender,sessions_possible,sessions_authorised,"
             "sessions_unauthorised,aln,idp,areas_of_need,wellbeing"]
    for n, p in enumerate(pupils):
        aln = "has_aln,school,SLCN" if n % 4 == 0 else "no_aln,,"
        lines.append(f"{p['upn']},{p['given_name']},{p['family_name']},{p['date_of_birth']},{'MF'[n % 2]},"
                     f"380,{n % 9},{n % 3},{aln},Likes a quiet start to the day")
    return "\n".join(lines) + "\n"


def schools_with_consent(gateway: str, primary: str, secondary: str, pupils: list[dict],
                         secret: str | None = None) -> None:
    """The schools' agreement for transitions, and each parent's consent: the first 20 to every
    category, the rest to identifiers and attendance only."""
    admin = bearer("admin", "local_authority:cardiff", ["admin"], secret)
    agreement = post(gateway, "/api/v1/agreements", admin, {
        "parties": [primary, secondary], "purposes": ["transition"], "categories": CATEGORIES,
        "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=400))})
    for party in (primary, secondary):
        post(gateway, f"/api/v1/agreements/{agreement['id']}/approve", bearer("admin", party, ["admin"], secret), {})
    staff = bearer("demo-teacher", primary, ["school_staff"], secret)
    for n, child in enumerate(pupils):
        post(gateway, "/api/v1/consents", staff, {
            "child": child, "given_by": {"name": "Rhiant", "relationship": "parent"}, "recipients": [secondary],
            "purposes": ["transition"], "evidence": "written",
            "categories": CATEGORIES if n < FULLY_CONSENTED else ["education", "attendance"]})
