"""The referral form's live preview: nothing until the form is complete, then what it would share and hold."""
from __future__ import annotations

from web.gateway import Answer

from .test_consent_pages import Answers, request, signed_in

COMPLETE = {"upn": "A123456789012", "given_name": "Osian", "family_name": "Evans", "date_of_birth": "2014-09-30",
            "to_org": "health:h", "service": "school_nursing", "urgency": "routine", "reason": "headaches",
            "details": "Asks to go home.", "share": ["contact", "health_wellbeing"]}
DECISIONS = {"decisions": [{"category": "contact", "allowed": True, "basis": "consent"},
                           {"category": "health_wellbeing", "allowed": False, "basis": None}]}


def test_an_incomplete_form_gets_no_preview_and_asks_no_one():
    gateway = Answers(Answer(200, DECISIONS))
    pages, headers, csrf = signed_in("teacher", gateway)

    response = pages.referral_preview(request("POST", "/referrals/preview", headers,
                                              data={**COMPLETE, "reason": "", "csrf": csrf}))

    assert response.status_code == 204 and gateway.asked == []


def test_a_complete_form_gets_what_it_would_share_and_hold_in_the_pages_language():
    gateway = Answers(Answer(200, DECISIONS))
    pages, headers, csrf = signed_in("teacher", gateway)

    response = pages.referral_preview(request("POST", "/referrals/preview", {**headers, "Accept-Language": "cy"},
                                              data={**COMPLETE, "csrf": csrf}))

    body = response.get_data(as_text=True)
    assert response.status_code == 200 and gateway.asked == [("POST", "/api/v1/referrals/preview")]
    assert 'id="preview-held"' in body and "Iechyd a llesiant" in body.split('id="preview-held"')[1]
    assert "<html" not in body   # a fragment for the live region


def test_without_the_session_csrf_token_it_is_refused():
    pages, headers, _csrf = signed_in("teacher", Answers(Answer(200, DECISIONS)))

    assert pages.referral_preview(request("POST", "/referrals/preview", headers, data=COMPLETE)).status_code == 403
