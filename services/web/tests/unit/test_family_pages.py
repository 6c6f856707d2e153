"""Families' pages and the DSL's review of what is kept from families, against a gateway that answers by path."""
from __future__ import annotations

from web import family_pages
from web.gateway import Answer

from .test_consent_pages import request, signed_in

KEPT = [{"id": "e1", "disclosure_id": "d1", "child_ref": "c_123456789abc", "reason": "Section 47 enquiry",
         "review_on": "2026-12-01", "marked_by": "demo-dsl", "marked_at": "2026-09-01T09:00:00+00:00", "due": True},
        {"id": "e2", "disclosure_id": "d2", "child_ref": "c_2", "reason": "Not yet", "review_on": "2027-03-01",
         "marked_by": "demo-dsl", "marked_at": "2026-11-01T09:00:00+00:00", "due": False}]


class ByPath:
    """A gateway answering each path its own way (200 [] otherwise), remembering what it was asked and sent."""

    def __init__(self, answers: dict[str, Answer]):
        self.answers, self.asked = answers, []

    def call(self, method, path, token, body=None, idempotency_key=None):
        self.asked.append((method, path, body))
        return self.answers.get(path, Answer(200, []))


def test_the_review_queue_shows_the_exemptions_due_with_keep_and_lift_in_welsh():
    dsl, headers, _ = signed_in("dsl", ByPath({"/api/v1/family-exemptions": Answer(200, KEPT)}))

    page = dsl.reviews(request("GET", "/reviews", {**headers, "Accept-Language": "cy"}))

    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Wedi&#39;u cadw rhag teuluoedd: i&#39;w hadolygu" in body and "Section 47 enquiry" in body
    assert "Not yet" not in body   # not due: not in the queue
    assert 'action="/family-exemptions/e1/review"' in body and 'value="lift"' in body and 'value="keep"' in body


def test_lifting_sends_no_review_date_and_returns_to_the_queue():
    gateway = ByPath({})
    dsl, headers, csrf = signed_in("dsl", gateway)

    done = family_pages.review_exemption(dsl, request(
        "POST", "/family-exemptions/e1/review", headers,
        data={"csrf": csrf, "decision": "lift", "reason": "the enquiry ended", "review_on": ""}), "e1")

    assert done.status_code == 303 and done.headers["Location"].endswith("/reviews?done=reviewed")
    assert gateway.asked == [("POST", "/api/v1/family-exemptions/e1/review",
                              {"decision": "lift", "reason": "the enquiry ended"})]


def test_a_family_member_has_only_the_family_pages_and_staff_have_none_of_them():
    parent, parent_headers, _ = signed_in("parent", ByPath({}))
    teacher, teacher_headers, _ = signed_in("teacher", ByPath({}))

    assert parent.home(request("GET", "/", parent_headers)).headers["Location"].endswith("/family")
    assert parent.referrals_list(request("GET", "/referrals", parent_headers)).status_code == 403
    assert family_pages.children(teacher, request("GET", "/family", teacher_headers)).status_code == 403


def test_an_empty_or_refused_code_is_an_error_on_the_code_field_in_welsh():
    refused = ByPath({"/api/v1/family/links": Answer(404, {"title": "no such invitation"})})
    parent, headers, csrf = signed_in("parent", refused)
    welsh = {**headers, "Accept-Language": "cy"}

    empty = family_pages.link(parent, request("POST", "/family/link", welsh, data={"csrf": csrf, "code": ""}))
    wrong = family_pages.link(parent, request("POST", "/family/link", welsh,
                                              data={"csrf": csrf, "code": "AAAA-BBBB-CCCC-DDDD"}))

    assert empty.status_code == 422 and "Rhowch y cod a roddodd yr ysgol i chi" in empty.get_data(as_text=True)
    assert wrong.status_code == 422
    body = wrong.get_data(as_text=True)
    assert "Nid yw&#39;r cod hwnnw&#39;n gweithio" in body and 'aria-invalid="true"' in body
