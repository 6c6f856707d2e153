"""One transition journey in headless Chromium, in one language; run by test_transition_journey.py.

A process of its own, like journey.py (whose Journey it uses): the primary's transition lead
uploads the class's CSV (first without choosing the school or the file), sees per pupil what
is included and what withheld and why, and sends the records; the secondary's lead finds them
in the inbox (an overdue one first, when `--overdue 1` says one was left), acknowledges one, then
the rest, and downloads the cohort as a Common Transfer File; the primary's lead sees every record
acknowledged. The pages may list records sent before (on a stack that has run the demo, say): the
class's own rows are told by their UPNs. Exits 1 with the failed expectation on stderr.

    python tests/browser/transition_journey.py --web URL --lang cy --primary school:6612001 \
        --secondary school:6614002 --cohort class.csv --narrow 8 --overdue 0 --shots DIR
"""
from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

from journey import Journey, browsing, expect, script
from playwright.sync_api import Page

WORDS = {
    "en": {"sign_out": "Sign out", "records": "Transition records", "upload": "Upload a cohort",
           "prepare": "Prepare the records", "problem": "There is a problem",
           "school_error": "Choose the receiving school", "file_error": "Choose the cohort's file",
           "ready": "Ready to send", "no_consent": "No consent covers it", "aln": "Additional learning needs",
           "send": "Send the records ready for", "sent": "Sent", "overdue": "Overdue",
           "received": "Transitions received", "inbox": "Transition records received", "acknowledge": "Acknowledge",
           "acknowledge_all": "Acknowledge every record from", "acknowledged": "Acknowledged",
           "ctf": "Download as a Common Transfer File"},
    "cy": {"sign_out": "Allgofnodi", "records": "Cofnodion pontio", "upload": "Llwytho carfan i fyny",
           "prepare": "Paratoi'r cofnodion", "problem": "Mae problem",
           "school_error": "Dewiswch yr ysgol sy'n derbyn", "file_error": "Dewiswch ffeil y garfan",
           "ready": "Yn barod i'w anfon", "no_consent": "Nid oes cydsyniad yn ei gwmpasu",
           "aln": "Anghenion dysgu ychwanegol",
           "send": "Anfon y cofnodion sy'n barod ar gyfer", "sent": "Wedi'i anfon", "overdue": "Hwyr",
           "received": "Pontio a dderbyniwyd", "inbox": "Cofnodion pontio a ddaeth i law", "acknowledge": "Cydnabod",
           "acknowledge_all": "Cydnabod pob cofnod gan", "acknowledged": "Wedi'i gydnabod",
           "ctf": "Lawrlwytho fel Ffeil Trosglwyddo Gyffredin"},
}


def rows(page: Page):
    return page.locator("main table tbody tr")


def statuses(page: Page) -> list[str]:
    return [cell.strip() for cell in page.locator("main table tbody tr td.status").all_inner_texts()]


def cohort(page: Page, upns: set[str]) -> dict[str, dict]:
    """The class's rows, by UPN: each row's status and what it withholds (other records' rows left out)."""
    found = page.eval_on_selector_all("main table tbody tr", """rows => rows.map(row => ({
        upn: (row.querySelector("th.pupil .hint")?.textContent ?? "").trim(),
        status: (row.querySelector("td.status")?.innerText ?? "").trim(),
        withheld: (row.querySelector("td.withheld")?.innerText ?? "").trim()}))""")
    return {row["upn"]: row for row in found if row["upn"] in upns}


def until(page: Page, done, what: str, seconds: float = 30) -> None:
    """Reload the page until `done(page)` holds (work an event or a send away), within the deadline."""
    deadline = time.monotonic() + seconds
    while not done(page):
        expect(time.monotonic() < deadline, f"never: {what}")
        page.wait_for_timeout(200)
        page.reload()


def sign_in_as(journey: Journey, key: str) -> None:
    """Sign in as one of the demonstration people, chosen by their key (both leads are 'Transition lead')."""
    page = journey.page
    page.goto(journey.web + "/sign-in")
    if page.get_attribute("html", "lang") != journey.lang:
        page.click(f"button[name=lang][value={journey.lang}]")
        page.wait_for_function("lang => document.documentElement.lang === lang", arg=journey.lang)
    journey.check("sign-in", "")
    page.check(f"input[name=user][value={key}]")
    page.locator("form[action='/sign-in'] button").click()   # not the family's sign-in by email below it
    page.wait_for_url(lambda url: "/sign-in" not in url)


def run(args) -> dict:
    words = WORDS[args.lang]
    with open(args.cohort, newline="", encoding="utf-8") as file:
        upns = {row["upn"] for row in csv.DictReader(file)}
    with browsing(args, "transitions", width=1280, timeout_ms=30_000, accept_downloads=True) as journey:
        page = journey.page

        def shot(name: str) -> None:
            """The page as the lead first sees it (a class's table is long; its first rows show it)."""
            if args.shots_wanted:
                journey.shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(journey.shots / f"{name}-{args.lang}.png"))
        ctf_pupils = 0
        # the primary's lead: `--overdue` records already overdue; upload the class, first forgetting school and file
        sign_in_as(journey, "lead")
        expect(page.url.endswith("/transitions"), f"the transition lead lands on {page.url}")
        journey.check("transitions", words["records"])
        expect(statuses(page).count(words["overdue"]) == args.overdue,
               f"not {args.overdue} overdue: {statuses(page)}")
        page.locator("main").get_by_role("link", name=words["upload"]).click()
        journey.check("transition-upload", words["upload"])
        page.locator("main form").get_by_role("button", name=words["prepare"]).click()
        page.wait_for_selector(".error-summary")
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary")
        for field, message in (("to_school", words["school_error"]), ("cohort", words["file_error"])):
            link = page.locator(f".error-summary a[href='#{field}']")
            expect(link.count() == 1 and link.inner_text() == message,
                   f"the summary lacks {message!r}: {page.inner_text('.error-summary')!r}")
            expect(page.get_attribute(f"#{field}", "aria-invalid") == "true", f"{field} is not marked invalid")
        journey.check("transition-upload-error", words["upload"])
        shot("transition-upload-error")
        page.locator(".error-summary a[href='#to_school']").click()
        expect(page.evaluate("document.activeElement.id") == "to_school", "the summary link does not focus")
        page.select_option("#to_school", args.secondary)
        page.set_input_files("#cohort", args.cohort)
        page.locator("main form").get_by_role("button", name=words["prepare"]).click()
        page.wait_for_url("**/transitions?status=prepared&done=prepared")

        # what each record will include and withhold, and why, before anything is shared
        journey.check("transitions-prepared", words["records"])
        ready = cohort(page, upns)
        expect(len(ready) == len(upns) and {r["status"] for r in ready.values()} == {words["ready"]},
               f"not {len(upns)} ready: {ready}")
        narrow = [r for r in ready.values() if words["no_consent"] in r["withheld"] and words["aln"] in r["withheld"]]
        expect(len(narrow) == args.narrow, f"{len(narrow)} records withhold ALN for want of consent")
        shot("transitions-prepared")
        page.locator("main").get_by_role("button", name=f"{words['send']} {args.secondary}").click()
        page.wait_for_url("**/transitions?done=sent")
        page.goto(args.web + "/transitions")
        until(page, lambda p: [r["status"] for r in cohort(p, upns).values()] == [words["sent"]] * len(upns),
              f"{len(upns)} records sent")
        expect(not args.overdue or statuses(page)[0] == words["overdue"], "the overdue record is not first")
        journey.check("transitions-sent", words["records"])
        shot("transitions-sent")
        journey.sign_out()

        # the secondary's lead: the inbox, overdue first; acknowledge one, then every other
        sign_in_as(journey, "receiver")
        page.locator("header").get_by_role("link", name=words["received"]).click()
        page.wait_for_url("**/transitions/inbox")
        until(page, lambda p: len(cohort(p, upns)) == len(upns), f"{len(upns)} records received")
        journey.check("transition-inbox", words["inbox"])
        expect(not args.overdue or statuses(page)[0] == words["overdue"],
               f"the overdue record is not first: {statuses(page)[:2]}")
        shot("transition-inbox")
        def acknowledged() -> int:
            return sum(s.startswith(words["acknowledged"]) for s in statuses(page))
        before = acknowledged()
        rows(page).first.get_by_role("button", name=words["acknowledge"]).click()
        page.wait_for_url("**/transitions/inbox?done=acknowledged")
        expect(acknowledged() == before + 1 and statuses(page)[-1].startswith(words["acknowledged"]),
               "the acknowledged record is not with the acknowledged, last")
        with page.expect_navigation(url="**/transitions/inbox?done=acknowledged"):
            page.locator("main").get_by_role("button", name=f"{words['acknowledge_all']} {args.primary}").click()
        done = statuses(page)
        expect(len(cohort(page, upns)) == len(upns) and all(s.startswith(words["acknowledged"]) for s in done),
               f"not every record acknowledged: {done}")
        journey.check("transition-inbox-acknowledged", words["inbox"])
        with page.expect_download() as download:
            page.locator("main").get_by_role("link", name=words["ctf"]).click()
        saved = Path(tempfile.mkdtemp()) / download.value.suggested_filename
        download.value.save_as(saved)
        expect("_CTF_" in saved.name and saved.suffix == ".xml", f"not a CTF file name: {saved.name}")
        document = ElementTree.parse(saved).getroot()
        in_file = [pupil.findtext("UPN") for pupil in document.iter("Pupil")]
        ctf_pupils = len(in_file)
        expect(upns <= set(in_file), f"the CTF lacks {sorted(upns - set(in_file))[:3]}")
        journey.sign_out()

        # the primary's lead sees every receipt
        sign_in_as(journey, "lead")
        journey.check("transitions-acknowledged", words["records"])
        done = statuses(page)
        expect(len(cohort(page, upns)) == len(upns) and set(done) == {words["acknowledged"]},
               f"the sender does not see every record acknowledged: {done}")
        shot("transitions-acknowledged")
    return {"lang": args.lang, "pages_checked": journey.checked, "ctf_pupils": ctf_pupils}


def main() -> int:
    return script(run, "web", "lang", "primary", "secondary", "cohort", "shots", narrow=int, overdue=int)


if __name__ == "__main__":
    sys.exit(main())
