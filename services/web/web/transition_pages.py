"""The transition leads' pages: a Year 6 cohort from the primary's CSV to the secondary's CTF.

The sending school uploads its cohort (a CSV from its MIS), sees per pupil what will be
included and what withheld and why (the gateway prepares the records and asks the sharing
decisions without sharing anything), sends them, and follows each to its acknowledgement or
until it goes overdue. The receiving school has its inbox: acknowledge, and download the
cohort as a Common Transfer File. Like every page, these only call the gateway's public API.
"""
from __future__ import annotations

import csv
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from .cookies import csrf_ok
from .pages import CATEGORY_NAMES, Page, Web

SENDERS = {"transition_lead"}
RECEIVERS = {"transition_lead", "dsl"}
STATUSES = ("prepared", "sent", "overdue", "acknowledged")
RECEIVED = ("sent", "overdue", "acknowledged")
MAX_UPLOAD_BYTES = 2_000_000
MAX_PUPILS = 5000   # the gateway's bound on one cohort
IN_FLIGHT = 8       # sends or acknowledgements asked of the gateway at once
FORM_OVERHEAD_BYTES = 64_000  # the form's other fields and multipart framing


def _(message: str) -> str:
    """Marks a string for the catalogue; it is translated where it is shown."""
    return message


SECTION_NAMES = {
    "identifiers": _("Identifiers and basic details"), "attendance": _("Attendance"),
    "aln": _("Additional learning needs"), "wellbeing": _("Wellbeing notes"),
    "agency_involvement": _("Agency involvement"), "child_protection": _("Child protection"),
}
TRANSITION_STATUS_NAMES = {"prepared": _("Ready to send"), "sent": _("Sent"), "overdue": _("Overdue"),
                           "acknowledged": _("Acknowledged")}
# why a section is withheld, from the words of the sharing decision (which are English only)
WITHHELD_REASONS = (
    ("no information-sharing agreement", _("No sharing agreement between the schools covers it")),
    ("no consent covers", _("No consent covers it")),
    ("was withdrawn", _("The consent it rested on was withdrawn")),
    ("expired", _("The consent it rested on has expired")),
    ("not given by a person entitled", _("The consent was not given by someone entitled to give it")),
    ("child-protection section moves only", _("Child protection moves only from a DSL who is the transition lead")),
    ("legal-obligation", _("Child protection moves only from a DSL who is the transition lead")),
    ("erased", _("Erased when the consent it rested on ended")),
)
CTF_REFUSED = _("This is not a Common Transfer File from your school to the school chosen: check the file")
ALN_OUTCOMES = ("has_aln", "no_aln", "pending")
IDP_HOLDERS = ("school", "local_authority")
GENDERS = ("M", "F", "U")
REQUIRED_COLUMNS = ("upn", "given_name", "family_name", "date_of_birth")
COLUMNS = (*REQUIRED_COLUMNS, "gender", "attendance_year", "sessions_possible", "sessions_authorised",
           "sessions_unauthorised", "aln", "idp", "areas_of_need", "aln_review_date", "wellbeing")
# the gateway's field (after `pupils.N.`) → the CSV column it came from
COLUMN_OF = {"child.upn": "upn", "child.given_name": "given_name", "child.family_name": "family_name",
             "child.date_of_birth": "date_of_birth", "basic.gender": "gender",
             "sections.attendance": "sessions_possible", "sections.aln.decision_outcome": "aln",
             "sections.aln.areas_of_need": "areas_of_need", "sections.aln.review_date": "aln_review_date",
             "sections.aln.idp": "idp", "sections.wellbeing.notes": "wellbeing"}


class CohortInvalid(Exception):
    """The uploaded file cannot be read as a cohort: (row or None, message, its values), untranslated."""

    def __init__(self, problems: list[tuple[int | None, str, dict]]):
        super().__init__(problems)
        self.problems = problems


def cohort_from_csv(data: bytes, today: date) -> list[dict]:
    """One pupil per row, in the gateway's shape. Row numbers count the header as row 1."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CohortInvalid([(None, _("Save the file as CSV UTF-8 and upload it again"), {})]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {name.strip().lower(): name for name in reader.fieldnames or () if name}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise CohortInvalid([(None, _("The first row must name the columns upn, given_name, family_name and "
                                      "date_of_birth"), {})])
    pupils, problems = [], []
    for number, raw in enumerate(reader, start=2):
        row = {key: (raw.get(original) or "").strip() for key, original in columns.items()}
        if not any(row.values()):
            continue
        pupil, found = _pupil(row, today)
        problems.extend((number, *problem) for problem in found)
        pupils.append((number, pupil))
        if len(pupils) > MAX_PUPILS:
            raise CohortInvalid([(None, _("A cohort can have at most %(most)s pupils"), {"most": MAX_PUPILS})])
    if not pupils and not problems:
        raise CohortInvalid([(None, _("The file has no pupils in it"), {})])
    if problems:
        raise CohortInvalid(problems)
    return [pupil for _number, pupil in pupils]


def _pupil(row: dict, today: date) -> tuple[dict, list[tuple[str, dict]]]:
    """The row as a pupil, or what is wrong with it: (message, its values)."""
    problems = [(_("the %(column)s column is empty"), {"column": name}) for name in REQUIRED_COLUMNS if not row[name]]
    for name in ("date_of_birth", "aln_review_date"):
        if row.get(name) and not _is_date(row[name]):
            problems.append((_("the %(column)s column needs a date, e.g. 2014-05-03"), {"column": name}))
    counts = ("sessions_possible", "sessions_authorised", "sessions_unauthorised")
    if any(row.get(name) for name in (*counts, "attendance_year")) and not all(
            row.get(name, "").isdigit() for name in counts):
        problems.append((_("attendance needs whole numbers in sessions_possible, sessions_authorised and "
                           "sessions_unauthorised"), {}))
    if row.get("attendance_year") and not row["attendance_year"].isdigit():
        problems.append((_("the attendance_year column needs a year, e.g. 2025"), {}))
    if row.get("aln") and row["aln"] not in ALN_OUTCOMES:
        problems.append((_("the aln column is has_aln, no_aln or pending"), {}))
    if row.get("idp") and row["idp"] not in IDP_HOLDERS:
        problems.append((_("the idp column is school or local_authority"), {}))
    if row.get("gender") and row["gender"].upper() not in GENDERS:
        problems.append((_("the gender column is M, F or U"), {}))
    if problems:
        return {}, problems
    pupil: dict = {"child": {name: row[name] for name in REQUIRED_COLUMNS}, "sections": {}}
    if row.get("gender"):
        pupil["basic"] = {"gender": row["gender"].upper()}
    if row.get("sessions_possible"):
        academic_year = today.year if today.month >= 9 else today.year - 1
        pupil["sections"]["attendance"] = {
            "year": int(row["attendance_year"]) if row.get("attendance_year") else academic_year,
            **{name: int(row[name]) for name in counts}}
    if row.get("aln"):
        aln: dict = {"decision_outcome": row["aln"],
                     "areas_of_need": [code for code in row.get("areas_of_need", "").replace(";", " ").split()]}
        if row.get("idp"):
            aln["idp"] = {"maintained_by": row["idp"]}
        if row.get("aln_review_date"):
            aln["review_date"] = row["aln_review_date"]
        pupil["sections"]["aln"] = aln
    if row.get("wellbeing"):
        pupil["sections"]["wellbeing"] = {"notes": row["wellbeing"]}
    return pupil, []


def withheld_reason(page: Page, reason: str) -> tuple[str, bool]:
    """(the reason in the page's language, whether it is translated) for a withheld section."""
    for words, message in WITHHELD_REASONS:
        if words in reason:
            return page.gettext(message), True
    return reason, page.language == "en"


# --- the sending school -----------------------------------------------------------------

def sent_list(web: Web, request: Request) -> Response:
    """The school's own records: those ready to send with what is withheld and why, then their receipts."""
    page = web.page(request)
    if (refused := web._needs(page, SENDERS)) is not None:
        return refused
    chosen = request.args.get("status", "")
    if chosen not in STATUSES:
        chosen = ""
    answer = page.call("GET", "/api/v1/transitions")
    if not answer.ok:
        return web._failed(page, answer)
    records = answer.body  # every record, for the counts; the table shows the chosen status
    counts = {status: sum(r["status"] == status for r in records) for status in STATUSES}
    ready: dict[str, int] = {}
    for record in records:
        if record["status"] == "prepared":
            ready[record["to_school"]] = ready.get(record["to_school"], 0) + 1
    receivers = sorted({r["to_school"] for r in records if r["status"] in RECEIVED})
    order = {status: index for index, status in enumerate(("prepared", "overdue", "sent", "acknowledged"))}
    records = sorted((r for r in records if not chosen or r["status"] == chosen),
                     key=lambda r: (order.get(r["status"], 9), r["to_school"], r["pupil"].get("family_name", ""),
                                    r["pupil"].get("given_name", "")))
    return page.render("transition_sent.html", records=records, counts=counts, ready=ready, chosen=chosen,
                       statuses=STATUSES, receivers=receivers, helpers=_helpers(page),
                       done=request.args.get("done", ""))


def upload(web: Web, request: Request) -> Response:
    """Upload a cohort (a CSV, or a CTF from the MIS): the records are prepared, nothing shared yet,
    and shown before sending."""
    page = web.page(request)
    if (refused := web._needs(page, SENDERS)) is not None:
        return refused
    schools = [org for org in web.settings.agencies if org.startswith("school:") and org != page.user["org"]]
    if request.method == "GET":
        return _upload_form(page, schools, {"to_school": ""}, [])
    if (request.content_length or 0) > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES:  # refused before it is read
        return _upload_form(page, schools, {"to_school": ""},
                            [("cohort", page.gettext("The file is larger than 2 MB"))], status=413)
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    values = {"to_school": request.form.get("to_school", "")}
    errors, pupils = [], []
    if values["to_school"] not in schools:
        errors.append(("to_school", page.gettext("Choose the receiving school")))
    file = request.files.get("cohort")
    data = file.stream.read(MAX_UPLOAD_BYTES + 1) if file is not None and file.filename else b""
    if not data:
        errors.append(("cohort", page.gettext("Choose the cohort's file")))
    elif len(data) > MAX_UPLOAD_BYTES:
        errors.append(("cohort", page.gettext("The file is larger than 2 MB")))
    elif is_ctf(file.filename, data):
        if errors:
            return _upload_form(page, schools, values, errors, status=422)
        try:
            xml = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _upload_form(page, schools, values, [("cohort", page.gettext(CTF_REFUSED))], status=422)
        answer = page.call("POST", "/api/v1/transitions/from-ctf", {"xml": xml, "to_school": values["to_school"]},
                           idempotency_key=request.form.get("key"))
        return _prepared(web, page, answer, schools, values)
    else:
        try:
            pupils = cohort_from_csv(data, date.today())
        except CohortInvalid as invalid:
            errors.extend(("cohort", _row_message(page, row, page.gettext(message) % params))
                          for row, message, params in invalid.problems[:20])
    if errors:
        return _upload_form(page, schools, values, errors, status=422)
    answer = page.call("POST", "/api/v1/transitions", {"to_school": values["to_school"], "pupils": pupils},
                       idempotency_key=request.form.get("key"))
    return _prepared(web, page, answer, schools, values)


def is_ctf(file_name: str, data: bytes) -> bool:
    """A Common Transfer File (XML) rather than a CSV: by its name, else by its first character."""
    return file_name.lower().endswith(".xml") or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _prepared(web: Web, page: Page, answer, schools: list[str], values: dict) -> Response:
    if answer.status == 401:
        return web._failed(page, answer)
    if not answer.ok:
        return _upload_form(page, schools, values, _refusal(web, page, answer), status=422)
    return page.go("/transitions?" + urlencode({"status": "prepared", "done": "prepared"}))


def _upload_form(page: Page, schools: list[str], values: dict, errors: list, status: int = 200) -> Response:
    return page.render("transition_upload.html", status=status, schools=schools, values=values, errors=errors,
                       columns=COLUMNS, key=str(uuid.uuid4()))


def _row_message(page: Page, row: int | None, message: str) -> str:
    return message if row is None else page.gettext("Row %(row)s: %(problem)s") % {"row": row, "problem": message}


def _refusal(web: Web, page: Page, answer) -> list[tuple[str, str]]:
    """The gateway's 422 names `pupils.N.<field>`: told as the row and column of the file."""
    if answer.status == 422 and answer.errors:
        found = []
        for error in answer.errors[:20]:
            parts = str(error.get("field", "")).split(".")
            if parts[0] == "to_school":  # a CTF addressed to another school than the one chosen
                found.append(("to_school", page.gettext("Choose the school the file is addressed to")))
            elif parts[0] == "xml" and len(parts) > 3 and parts[2].isdigit():  # a pupil of the CTF
                found.append(("cohort", page.gettext("Pupil %(number)s in the file: check their details")
                              % {"number": int(parts[2]) + 1}))
            elif parts[0] == "xml":
                found.append(("cohort", page.gettext(CTF_REFUSED)))
            elif parts[0] == "pupils" and len(parts) > 2 and parts[1].isdigit():
                field = ".".join(parts[2:])
                column = next((c for prefix, c in COLUMN_OF.items() if field.startswith(prefix)), None)
                problem = (page.gettext("check the %(column)s column") % {"column": column} if column
                           else page.gettext("check this row"))
                found.append(("cohort", _row_message(page, int(parts[1]) + 2, problem)))
            else:
                found.append(("cohort", page.gettext("Check the file")))
        return found
    return web._refusal(page, answer, {})


def send(web: Web, request: Request) -> Response:
    """Send every record ready for one receiving school; consent is asked again for each as it goes."""
    page = web.page(request)
    if (refused := web._needs(page, SENDERS)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    to_school = request.form.get("to_school", "")
    ready = page.call("GET", "/api/v1/transitions?" + urlencode({"status": "prepared", "to_school": to_school}))
    if ready.status == 422:  # not a school's id: nothing of this school's is ready for it
        return page.go("/transitions")
    if not ready.ok:
        return web._failed(page, ready)
    answers = _each(page, [f"/api/v1/transitions/{quote(r['id'], safe='')}/send" for r in ready.body])
    # 409: already sent (this form posted twice, or another lead sent it): nothing left to do for it
    failed = [a for a in answers if not a.ok and a.status != 409]
    if any(a.status == 401 for a in failed):
        return web._failed(page, failed[0])
    return page.go("/transitions?" + urlencode({"done": "sent" if not failed else "unsent"}))


# --- the receiving school -------------------------------------------------------------------

def inbox(web: Web, request: Request) -> Response:
    """Records sent to the school: those awaiting acknowledgement first (overdue at the top)."""
    page = web.page(request)
    if (refused := web._needs(page, RECEIVERS)) is not None:
        return refused
    chosen = request.args.get("status", "")
    if chosen not in RECEIVED:
        chosen = ""
    answer = page.call("GET", "/api/v1/transitions/inbox" + (f"?status={chosen}" if chosen else ""))
    if not answer.ok:
        return web._failed(page, answer)
    order = {"overdue": 0, "sent": 1, "acknowledged": 2}
    records = sorted(answer.body, key=lambda r: (order.get(r["status"], 3), r["from_school"],
                                                 _name(r).get("family_name", ""), _name(r).get("given_name", "")))
    senders = sorted({r["from_school"] for r in records})
    waiting = {school: sum(r["from_school"] == school and r["status"] != "acknowledged" for r in records)
               for school in senders}
    return page.render("transition_inbox.html", records=records, senders=senders, waiting=waiting, chosen=chosen,
                       statuses=RECEIVED, helpers=_helpers(page), done=request.args.get("done", ""))


def acknowledge(web: Web, request: Request, transition_id: str | None = None) -> Response:
    """Acknowledge one record, or (no id) every unacknowledged record from one sending school."""
    page = web.page(request)
    if (refused := web._needs(page, RECEIVERS)) is not None:
        return refused
    if not csrf_ok(page.session, request.form.get("csrf")):
        return page.render("forbidden.html", status=403)
    if transition_id is not None:
        ids = [transition_id]
    else:
        received = page.call("GET", "/api/v1/transitions/inbox")
        if not received.ok:
            return web._failed(page, received)
        ids = [r["id"] for r in received.body
               if r["from_school"] == request.form.get("from_school") and r["status"] != "acknowledged"]
    answers = _each(page, [f"/api/v1/transitions/{quote(i, safe='')}/acknowledge" for i in ids])
    failed = [a for a in answers if not a.ok]
    if failed and failed[0].status in (401, 403, 404):
        return web._failed(page, failed[0])
    return page.go("/transitions/inbox?" + urlencode({"done": "acknowledged" if not failed else "unacknowledged"}))


def ctf(web: Web, request: Request) -> Response:
    """A cohort between two schools as one Common Transfer File, for the school's MIS to import."""
    page = web.page(request)
    if (refused := web._needs(page, RECEIVERS)) is not None:
        return refused
    query = urlencode({"from_school": request.args.get("from_school", ""),
                       "to_school": request.args.get("to_school", "")})
    status, content, headers = web.gateway.download(f"/api/v1/transitions/ctf?{query}", page.user["token"])
    if status != 200:
        return web._failed(page, _Refused(status))
    response = Response(content, content_type="application/xml")
    for name in ("Content-Disposition", "Pont-CTF-Pupils", "Pont-CTF-Omitted"):
        if name in headers:
            response.headers[name] = headers[name]
    return page.finish(response)


class _Refused:
    """A download's refusal, told as a page's would be."""

    def __init__(self, status: int):
        self.status = 404 if status == 422 else status if status in (401, 403, 404) else 502


# --- shared ---------------------------------------------------------------------------------

def _each(page: Page, paths: list[str]) -> list:
    """POST to each path, a few at a time (the cohort's records are independent of each other)."""
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(IN_FLIGHT, len(paths))) as pool:
        return list(pool.map(lambda path: page.call("POST", path, {}), paths))


def _name(record: dict) -> dict:
    return (record.get("sections") or {}).get("identifiers") or {}


def _helpers(page: Page) -> dict:
    return {"section_names": SECTION_NAMES, "status_names": TRANSITION_STATUS_NAMES,
            "category_names": CATEGORY_NAMES, "reason": lambda text: withheld_reason(page, text)}


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
        return True
    except ValueError:
        return False
