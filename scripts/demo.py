"""`make demo`: the main flows, through the public API of a running Pont (`make start`).

Each step prints what a person would see. Uses development tokens signed with
PONT_JWT_SECRET (or its development default) and the gateway on PONT_GATEWAY_PORT.
"""
from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import date, timedelta

import requests

from pont_shared.auth import mint
from pont_shared.config import Settings
from pont_shared.identity import make_upn

SETTINGS = Settings.from_env("gateway")
BASE = f"http://127.0.0.1:{SETTINGS.http_port}"
PRIMARY, SECONDARY, HEALTH = "school:6612001", "school:6614002", "health:cardiff-vale"


def token(sub: str, org: str, *roles: str) -> dict:
    return {"Authorization": f"Bearer {mint(sub, org, list(roles), SETTINGS.jwt_secret)}"}


ADMIN = token("demo-admin", "local_authority:cardiff", "admin")
DSL = token("demo-dsl", PRIMARY, "dsl", "school_staff")
STAFF = token("demo-teacher", PRIMARY, "school_staff")
NURSE = token("demo-nurse", HEALTH, "school_nurse")
LEAD = token("demo-lead", PRIMARY, "transition_lead", "dsl")
RECEIVING = token("demo-receiver", SECONDARY, "transition_lead", "dsl")


def call(method: str, path: str, headers: dict, body=None, expect=(200, 201)):
    response = requests.request(method, BASE + path, json=body, headers=headers, timeout=15)
    if response.status_code not in expect:
        print(f"  ✗ {method} {path} → {response.status_code} {response.text}", file=sys.stderr)
        sys.exit(1)
    return response.json() if "json" in response.headers.get("Content-Type", "") else response.text


def step(text: str) -> None:
    print(f"\n▶ {text}")


def show(value) -> None:
    print("  " + json.dumps(value, indent=None, default=str)[:400])


def wait_for(probe, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    print(f"  ✗ {what} did not happen within {timeout}s", file=sys.stderr)
    sys.exit(1)


def child(serial: int, given: str, family: str, born: str) -> dict:
    return {"upn": make_upn(serial), "given_name": given, "family_name": family, "date_of_birth": born}


def sharing() -> str:
    step("An information-sharing agreement between the primary school, the secondary and health")
    parties = [PRIMARY, SECONDARY, HEALTH]
    proposed = call("POST", "/api/v1/agreements", ADMIN, {
        "parties": parties,
        "purposes": ["referral", "appointment", "transition"],
        "categories": ["contact", "education", "attendance", "aln", "health_wellbeing", "safeguarding",
                       "family_context"],
        "valid_from": str(date.today() - timedelta(days=1)), "valid_to": str(date.today() + timedelta(days=365)),
    })
    step("An administrator of each party approves it: then it is in force")
    for party in parties:
        approved = call("POST", f"/api/v1/agreements/{proposed['id']}/approve", token("demo-admin", party, "admin"))
    print(f"  status: {approved['status']}")
    pupil = child(int(uuid.uuid4().int % 10**8), "Megan", "Pritchard", "2015-03-14")
    step("A parent gives written consent to share with the school nursing service")
    consent = call("POST", "/api/v1/consents", STAFF, {
        "child": pupil, "given_by": {"name": "Sian Pritchard", "relationship": "parent"},
        "recipients": [HEALTH], "purposes": ["referral", "appointment"],
        "categories": ["contact", "education", "health_wellbeing"], "evidence": "written",
    }, expect=(201,))
    show(consent)
    step("May the school share her health and wellbeing information with health for a referral?")
    show(call("POST", "/api/v1/sharing-decisions", STAFF, {
        "child_ref": consent["child_ref"], "to_org": HEALTH, "purpose": "referral",
        "categories": ["health_wellbeing", "family_context"]}))
    return pupil, consent


def referral(pupil: dict, consent: dict) -> None:
    step("A teacher refers her to the school nurse")
    raised = call("POST", "/api/v1/referrals", STAFF, {
        "child": pupil, "to_org": HEALTH, "service": "school_nursing", "reason": "wellbeing",
        "details": "Frequent headaches in class", "urgency": "routine", "share": ["contact", "health_wellbeing"],
    }, expect=(201,))
    show(raised)
    step("The nurse sees it in health's own inbox")
    inbox = wait_for(lambda: [r for r in call("GET", "/api/v1/inbox/referrals", NURSE)
                              if r.get("referral_id", r.get("id")) == raised["id"]], "delivery to health")
    show(inbox[0])
    step("The nurse accepts, then closes it with an outcome")
    call("POST", f"/api/v1/referrals/{raised['id']}/accept", NURSE)
    wait_for(lambda: call("GET", f"/api/v1/referrals/{raised['id']}", STAFF)["status"] == "accepted", "acceptance")
    call("POST", f"/api/v1/referrals/{raised['id']}/close", NURSE, {"outcome": "seen; advice given to family"})
    final = wait_for(lambda: (r := call("GET", f"/api/v1/referrals/{raised['id']}", STAFF))["status"] == "closed"
                     and r, "closure")
    print("  chronology: " + " → ".join(h["status"] for h in final["history"]))


def withdrawal(consent: dict) -> None:
    step("The parent withdraws consent")
    show(call("POST", f"/api/v1/consents/{consent['id']}/withdraw", STAFF, {"reason": "parent request"}))
    step("What was shared about her, with whom and why (the ledger)")
    for entry in call("GET", f"/api/v1/children/{consent['child_ref']}/disclosures", DSL):
        show(entry)


def clinic() -> None:
    step("The school nurse's clinic in the primary school's medical room, held yesterday")
    day = date.today() - timedelta(days=1)  # whether a child came is recorded once the appointment has started
    session = call("POST", "/api/v1/sessions", NURSE, {
        "site": PRIMARY, "room": f"medical-room-{uuid.uuid4().hex[:4]}", "service": "school_nursing",
        "date": str(day), "start": "09:00", "end": "10:00", "slot_minutes": 20, "capacity_per_slot": 1,
    }, expect=(201,))
    print(f"  {len(session['slots'])} slots")
    booked = []
    for index, slot in enumerate(session["slots"]):
        pupil = child(int(uuid.uuid4().int % 10**8), f"Pupil{index}", "Demo", "2015-01-01")
        booked.append(call("POST", "/api/v1/appointments", NURSE, {"slot_id": slot["id"], "child": pupil},
                           expect=(201,)))
    print(f"  booked {len(booked)} pupils")
    call("POST", f"/api/v1/appointments/{booked[0]['id']}/attended", NURSE)
    call("POST", f"/api/v1/appointments/{booked[1]['id']}/was-not-brought", NURSE)
    print("  one attended; one was not brought (raised to the school's DSL for review)")


def transition() -> None:
    step("The primary's transition lead hands a class of 28 over to the secondary school")
    pupils = []
    for i in range(28):
        sections = {"attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": i % 9,
                                   "sessions_unauthorised": i % 3},
                    "aln": {"decision_outcome": "has_aln" if i % 6 == 0 else "no_aln", "areas_of_need": []},
                    "wellbeing": {"notes": "Settles best with a named adult at the start of the day."}}
        if i == 7:
            sections["child_protection"] = {"status": "open", "summary": "child protection plan"}
        pupils.append({"child": child(int(uuid.uuid4().int % 10**8), f"Year6-{i}", "Demo", "2015-02-02"),
                       "sections": sections})
    for i, pupil in enumerate(pupils[:25]):       # three families have not (yet) consented
        call("POST", "/api/v1/consents", STAFF, {
            "child": pupil["child"], "given_by": {"name": "Parent", "relationship": "parent"},
            "recipients": [SECONDARY], "purposes": ["transition"], "evidence": "written",
            "categories": ["education", "attendance", "aln"] + (["health_wellbeing"] if i % 2 else [])},
            expect=(201,))
    print("  consent recorded for 25 of the 28 pupils (wellbeing notes for half of them)")
    created = call("POST", "/api/v1/transitions", LEAD, {"to_school": SECONDARY, "pupils": pupils, "send": True},
                   expect=(201,))
    withheld = [w["section"] for r in created["records"] for w in r["withheld"]]
    print(f"  {len(created['ids'])} records prepared and sent; sections withheld for want of a basis: "
          + ", ".join(f"{section} ×{withheld.count(section)}" for section in dict.fromkeys(withheld)))
    mine = set(created["ids"])
    inbox = wait_for(lambda: (items := [i for i in call("GET", "/api/v1/transitions/inbox", RECEIVING)
                                        if i["id"] in mine]) and len(items) == len(mine) and items,
                     "transition delivery")
    [protected] = [i for i in inbox if "child_protection" in i["sections"]]
    bases = {e["basis"] for e in call("GET", f"/api/v1/children/{protected['child_ref']}/disclosures", LEAD)
             if "safeguarding" in e["categories"]}
    lead_only = token("demo-receiving-lead", SECONDARY, "transition_lead")
    [as_lead] = [i for i in call("GET", "/api/v1/transitions/inbox", lead_only) if i["id"] == protected["id"]]
    print(f"  all {len(inbox)} are in the secondary school's inbox; one pupil's child-protection file is served to "
          f"its DSL (to its transition lead: {[r['section'] for r in as_lead.get('restricted', [])]} restricted), "
          f"recorded in the ledger on the basis {', '.join(sorted(bases))}")
    for record_id in created["ids"]:
        call("POST", f"/api/v1/transitions/{record_id}/acknowledge", RECEIVING)
    print("  all acknowledged")
    response = requests.get(f"{BASE}/api/v1/transitions/ctf", params={"from_school": PRIMARY, "to_school": SECONDARY},
                            headers=LEAD, timeout=15)
    if response.status_code != 200:
        print(f"  ✗ cohort CTF → {response.status_code} {response.text}", file=sys.stderr)
        sys.exit(1)
    name = response.headers["Content-Disposition"].split("filename=")[1].strip('"')
    print(f"  Common Transfer File {name}: {response.headers['Pont-CTF-Pupils']} pupils; "
          f"{response.headers['Pont-CTF-Omitted']} records left out (their identifiers were not shared)")
    imported = call("POST", "/api/v1/transitions/ctf-import", RECEIVING, {"xml": response.text})
    print(f"  the secondary imports it into its own store: {imported['imported']} new, "
          f"{imported['already_held']} already held")


def main() -> int:
    try:
        requests.get(f"{BASE}/health", timeout=3)
    except requests.ConnectionError:
        print(f"Pont is not running at {BASE}: run `make start` first.", file=sys.stderr)
        return 1
    available = set(call("GET", "/openapi.json", {})["paths"])
    pupil = consent = None
    if "/api/v1/consents" in available:
        pupil, consent = sharing()
    if "/api/v1/referrals" in available and consent:
        referral(pupil, consent)
    if "/api/v1/sessions" in available:
        clinic()
    if "/api/v1/transitions" in available:
        transition()
    if consent:
        withdrawal(consent)
    print("\nDemo complete.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
