"""The transition pages' own rules: reading a cohort's CSV, telling why a section is withheld, who may use them."""
from __future__ import annotations

import io
from datetime import date

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from pont_shared.config import Settings
from web.cookies import SESSION_COOKIE
from web.gateway import Answer
from web.pages import Page, Web
from web.transition_pages import CohortInvalid, cohort_from_csv, sent_list, upload, withheld_reason

HEADER = ("upn,given_name,family_name,date_of_birth,gender,attendance_year,sessions_possible,sessions_authorised,"
          "sessions_unauthorised,aln,idp,areas_of_need,aln_review_date,wellbeing\n")
TODAY = date(2026, 12, 4)


class TestCohortFromCsv:
    def test_reads_each_row_into_the_gateways_shape_with_only_the_sections_it_has(self):
        data = (HEADER + "A661000000012,Cerys,Jones,2015-03-14,F,2025,380,12,3,has_aln,school,SLCN;ASD,2026-03-01,"
                "\"Settles best with a named adult, at the start of the day\"\n"
                "A661000000013,Dafydd,ap Rhys,2015-01-02,,,,,,,,,,\n").encode("utf-8-sig")  # Excel's BOM

        first, second = cohort_from_csv(data, TODAY)

        assert first == {
            "child": {"upn": "A661000000012", "given_name": "Cerys", "family_name": "Jones",
                      "date_of_birth": "2015-03-14"},
            "basic": {"gender": "F"},
            "sections": {
                "attendance": {"year": 2025, "sessions_possible": 380, "sessions_authorised": 12,
                               "sessions_unauthorised": 3},
                "aln": {"decision_outcome": "has_aln", "areas_of_need": ["SLCN", "ASD"],
                        "idp": {"maintained_by": "school"}, "review_date": "2026-03-01"},
                "wellbeing": {"notes": "Settles best with a named adult, at the start of the day"}}}
        assert second == {"child": {"upn": "A661000000013", "given_name": "Dafydd", "family_name": "ap Rhys",
                                    "date_of_birth": "2015-01-02"}, "sections": {}}

    def test_attendance_without_a_year_is_this_academic_years(self):
        data = (b"upn,given_name,family_name,date_of_birth,sessions_possible,sessions_authorised,"
                b"sessions_unauthorised\nA661000000012,Cerys,Jones,2015-03-14,380,1,0\n")

        [autumn] = cohort_from_csv(data, date(2026, 10, 1))
        [summer] = cohort_from_csv(data, date(2027, 6, 1))

        assert autumn["sections"]["attendance"]["year"] == 2026 and summer["sections"]["attendance"]["year"] == 2026

    def test_names_each_bad_row_and_what_is_wrong_with_it(self):
        data = (HEADER + "A661000000012,Cerys,Jones,14/03/2015,,,,,,,,,,\n"
                ",Dafydd,Rhys,2015-01-02,X,,380,a,0,maybe,,,,\n").encode()

        with pytest.raises(CohortInvalid) as invalid:
            cohort_from_csv(data, TODAY)

        assert [(row, message % values) for row, message, values in invalid.value.problems] == [
            (2, "the date_of_birth column needs a date, e.g. 2014-05-03"),
            (3, "the upn column is empty"),
            (3, "attendance needs whole numbers in sessions_possible, sessions_authorised and sessions_unauthorised"),
            (3, "the aln column is has_aln, no_aln or pending"),
            (3, "the gender column is M, F or U")]

    @pytest.mark.parametrize("data, message", [
        (b"name,birthday\nCerys,2015-03-14\n", "The first row must name the columns"),
        (HEADER.encode(), "The file has no pupils in it"),
        ("upn,given_name,family_name,date_of_birth\nA661000000012,Ŵyn,Jones,2015-03-14\n".encode("utf-16"),
         "Save the file as CSV UTF-8"),
    ])
    def test_refuses_a_file_that_is_not_a_cohort(self, data, message):
        with pytest.raises(CohortInvalid) as invalid:
            cohort_from_csv(data, TODAY)

        [(row, said, _values)] = invalid.value.problems
        assert row is None and said.startswith(message)


def web() -> Web:
    return Web(Settings.from_env("web", {"PONT_ENV": "development",
                                         "PONT_AGENCIES": "school:6612001,school:6614002,health:h"}))


def request(method: str, path: str, **kwargs) -> Request:
    return Request(EnvironBuilder(method=method, path=path, **kwargs).get_environ())


def signed_in(pages: Web, who: str, language: str = "en") -> tuple[dict, str]:
    first = pages.sign_in(request("GET", "/sign-in"))
    cookie = first.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    csrf = pages.sessions.load(cookie)["csrf"]
    done = pages.sign_in(request("POST", "/sign-in", data={"user": who, "csrf": csrf},
                                 headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}))
    return {"Cookie": done.headers["Set-Cookie"].split(";")[0], "Accept-Language": language}, csrf


class TestWhoMay:
    def test_a_teacher_is_refused_the_senders_pages_before_the_gateway_is_asked(self):
        pages = web()
        headers, csrf = signed_in(pages, "teacher")

        listed = sent_list(pages, request("GET", "/transitions", headers=headers))
        uploaded = upload(pages, request("POST", "/transitions/new", data={"csrf": csrf}, headers=headers))

        assert listed.status_code == 403 and uploaded.status_code == 403

    def test_an_upload_without_the_csrf_token_is_refused(self):
        pages = web()
        headers, _csrf = signed_in(pages, "lead")

        refused = upload(pages, request("POST", "/transitions/new", data={"to_school": "school:6614002"},
                                        headers=headers))

        assert refused.status_code == 403

    def test_an_upload_missing_its_school_and_file_names_both_in_welsh_before_the_gateway_is_asked(self):
        pages = web()
        headers, csrf = signed_in(pages, "lead", "cy")

        refused = upload(pages, request("POST", "/transitions/new", data={"csrf": csrf}, headers=headers))

        body = refused.get_data(as_text=True)
        assert refused.status_code == 422
        assert '<a href="#to_school">Dewiswch yr ysgol sy&#39;n derbyn</a>' in body
        assert '<a href="#cohort">Dewiswch ffeil y garfan</a>' in body
        assert 'id="cohort"' in body and 'aria-invalid="true"' in body

    def test_the_form_offers_the_other_schools_only(self):
        pages = web()
        headers, _csrf = signed_in(pages, "lead")

        body = upload(pages, request("GET", "/transitions/new", headers=headers)).get_data(as_text=True)

        assert '<option value="school:6614002">' in body and '<option value="school:6612001">' not in body


class TestWithheldReason:
    @pytest.mark.parametrize("reason, welsh", [
        ("no consent covers school:6614002, transition, aln", "Nid oes cydsyniad yn ei gwmpasu"),
        ("no information-sharing agreement in force between school:1 and school:2 covers transition / aln",
         "Nid oes cytundeb rhannu rhwng yr ysgolion yn ei gwmpasu"),
        ("consent 5d1c was withdrawn", "Cafodd y cydsyniad yr oedd yn dibynnu arno ei dynnu'n ôl"),
        ("expired", "Mae'r cydsyniad yr oedd yn dibynnu arno wedi dod i ben"),
    ])
    def test_the_sharing_decisions_reason_is_told_in_the_pages_language(self, reason, welsh):
        page = Page(web(), request("GET", "/", headers={"Accept-Language": "cy"}))

        assert withheld_reason(page, reason) == (welsh, True)

    def test_a_reason_it_does_not_know_is_shown_as_given_and_marked_as_english(self):
        page = Page(web(), request("GET", "/", headers={"Accept-Language": "cy"}))

        assert page.language == "cy"
        assert withheld_reason(page, "a new rule") == ("a new rule", False)


class Refusing:
    """Stands in for the gateway (not what these tests are about): records each call, answers 422 naming `field`."""

    def __init__(self, field: str):
        self.field, self.calls = field, []

    def call(self, method, path, token, body=None, idempotency_key=None):
        self.calls.append((method, path, body))
        return Answer(422, {"errors": [{"field": self.field, "message": "invalid"}]},
                      [{"field": self.field, "message": "invalid"}])


def uploaded(field: str, name: str, data: bytes, language: str = "en") -> tuple[Refusing, str, int]:
    gateway = Refusing(field)
    pages = Web(Settings.from_env("web", {"PONT_ENV": "development",
                                          "PONT_AGENCIES": "school:6612001,school:6614002"}), gateway=gateway)
    headers, csrf = signed_in(pages, "lead", language)
    response = upload(pages, request("POST", "/transitions/new", headers=headers, data={
        "csrf": csrf, "to_school": "school:6614002", "cohort": (io.BytesIO(data), name)}))
    return gateway, response.get_data(as_text=True), response.status_code


class TestTheGatewaysRefusal:
    def test_a_pupil_the_gateway_refuses_is_named_by_the_row_and_column_of_the_file(self):
        data = (HEADER + "A661000000012,Cerys,Jones,2015-03-14,,,,,,,,,,\n"
                "A661000000013,Dafydd,Rhys,2015-01-02,,,,,,,,,,\n").encode()

        gateway, body, status = uploaded("pupils.1.child.upn", "class.csv", data, "cy")

        assert [(m, p) for m, p, _body in gateway.calls] == [("POST", "/api/v1/transitions")]
        assert len(gateway.calls[0][2]["pupils"]) == 2
        assert status == 422 and '<a href="#cohort">Rhes 3: gwiriwch y golofn upn</a>' in body

    def test_a_ctf_goes_to_the_gateway_as_one_and_its_refused_pupil_is_named_by_its_place(self):
        xml = b"<?xml version='1.0' encoding='UTF-8'?><CTfile><Header/></CTfile>"

        gateway, body, status = uploaded("xml.pupils.4.child.date_of_birth", "export.XML", xml)

        [(method, path, sent)] = gateway.calls
        assert (method, path) == ("POST", "/api/v1/transitions/from-ctf")
        assert sent == {"xml": xml.decode(), "to_school": "school:6614002"}
        assert status == 422 and "Pupil 5 in the file: check their details" in body
