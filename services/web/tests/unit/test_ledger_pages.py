"""The DSL's "what was shared about this pupil": who may read it, and how the ledger reads."""
from __future__ import annotations

import re

from web import consent_pages, ledger_pages
from web.gateway import Answer

from .test_consent_pages import Answers, request, signed_in

ENTRIES = [
    {"seq": 4, "kind": "disclosure", "at": "2026-12-01T09:30:00+00:00", "from_org": "school:1", "to_org": "health:h",
     "purpose": "referral", "categories": ["contact"], "basis": "safeguarding", "by": "demo-dsl",
     "flagged_for_review": True, "recipients": []},
    {"seq": 9, "kind": "withdrawal", "at": "2026-12-02T10:00:00+00:00", "from_org": "school:1", "to_org": None,
     "purpose": None, "categories": ["contact"], "basis": "consent", "by": "demo-teacher",
     "flagged_for_review": False, "recipients": ["health:h"]},
]


def test_only_a_dsl_or_an_admin_may_read_it_and_a_malformed_reference_is_not_asked_about():
    teacher, teacher_headers, _ = signed_in("teacher")
    dsl, dsl_headers, _ = signed_in("dsl")

    refused = ledger_pages.child_shared(teacher, request("GET", "/children/c_1/shared", teacher_headers), "c_1")
    malformed = ledger_pages.child_shared(dsl, request("GET", "/children/x/shared", dsl_headers), "c 1;drop")

    assert refused.status_code == 403 and malformed.status_code == 404   # NoGateway: neither asked the gateway


def test_the_ledger_is_newest_first_in_plain_words_in_welsh():
    gateway = Answers(Answer(200, ENTRIES))
    dsl, headers, _ = signed_in("dsl", gateway)

    page = ledger_pages.child_shared(dsl, request("GET", "/children/c_1/shared", {**headers, "Accept-Language": "cy"}),
                                     "c_1")

    body = page.get_data(as_text=True)
    assert page.status_code == 200 and gateway.asked == [("GET", "/api/v1/children/c_1/disclosures")]
    assert body.index("Tynnwyd cydsyniad yn ôl") < body.index("Rhannwyd")   # the withdrawal, later, first
    assert "Diogelu: roedd y disgybl mewn perygl" in body and "I&#39;w adolygu" in body


def test_a_child_the_gateway_does_not_know_is_not_found():
    dsl, headers, _ = signed_in("dsl", Answers(Answer(404, {"title": "no record of this child"})))

    assert ledger_pages.child_shared(dsl, request("GET", "/children/c_2/shared", headers), "c_2").status_code == 404



def test_an_admin_reads_it_too_each_disclosure_in_full_at_its_time_in_wales():
    summer = {**ENTRIES[0], "at": "2026-07-01T09:30:00+00:00", "basis": "consent", "flagged_for_review": False}
    admin, headers, _ = signed_in("admin", Answers(Answer(200, [summer])))

    page = ledger_pages.child_shared(admin, request("GET", "/children/c_1/shared", headers), "c_1")

    cells = [cell.strip() for cell in re.findall(r"<td>(.*?)</td>", page.get_data(as_text=True), re.S)]
    assert page.status_code == 200   # 09:30 UTC is 10:30 in a Welsh summer
    assert cells == ["1 July 2026, 10:30", "Shared", "school:1", "health:h", "Referrals", "Contact details", "Consent",
                     "demo-dsl", "Shown"]   # to the family: only a DSL may keep it from them


def test_found_pupils_link_to_what_was_shared_for_a_dsl_only():
    found = [{"child_ref": "c_1", "upn": "A661000000012", "given_name": "Siân", "family_name": "ap Huw",
              "date_of_birth": "2015-03-14", "referrals": 1, "last_referred_at": "2026-12-01T09:30:00+00:00"}]

    def listed(who: str) -> str:
        pages, headers, _ = signed_in(who, Answers(Answer(200, found)))
        return consent_pages.find_pupil(pages, request("GET", "/pupils?q=A661000000012", headers)).get_data(
            as_text=True)

    assert 'href="/children/c_1/shared"' in listed("dsl") and 'href="/children/c_1/shared"' not in listed("teacher")
