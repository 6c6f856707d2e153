"""One clinic journey in headless Chromium, in one language; run by test_clinic_journey.py.

A process of its own: Playwright's sync API cannot run under the eventlet monkey patching that
the test process (nameko) needs. Exits 1 with the failed expectation on stderr.

    python tests/browser/journey.py --web URL --lang cy --site school:x --room R --day 2027-03-02 --upn A661...
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

HERE = Path(__file__).parent
AXE = HERE / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
WORDS = {
    "en": {"sign_in": "Sign in", "sessions": "Clinic sessions", "create": "Create a session",
           "create_submit": "Create the session", "problem": "There is a problem", "nurse": "School nurse",
           "dsl": "Designated safeguarding lead", "book": "Book a pupil", "booked": "Booked",
           "wnb": "Was not brought", "reviews": "Review queue", "sign_out": "Sign out", "room_error": "Enter the room",
           "teacher": "Teacher", "referrals": "Referrals", "inbox": "Referrals inbox", "referral": "Referral",
           "accept": "Accept", "close": "Close", "sent": "Sent", "received": "Received", "accepted": "Accepted",
           "closed": "Closed", "outcome_error": "Describe the outcome", "urgent": "Urgent",
           "health_wellbeing": "Health and wellbeing", "raise": "Raise a referral", "send": "Send the referral",
           "back_referrals": "Back to referrals",
           "upn_error": "This UPN is not valid: check it against the school's records",
           "months": ["January", "February", "March", "April", "May", "June", "July", "August",
                      "September", "October", "November", "December"]},
    "cy": {"sign_in": "Mewngofnodi", "sessions": "Sesiynau clinig", "create": "Creu sesiwn",
           "create_submit": "Creu'r sesiwn", "problem": "Mae problem", "nurse": "Nyrs ysgol",
           "dsl": "Arweinydd diogelu dynodedig", "book": "Archebu disgybl", "booked": "Wedi'i archebu",
           "wnb": "Ni ddaethpwyd ag ef/hi", "reviews": "Ciw adolygu", "sign_out": "Allgofnodi",
           "room_error": "Rhowch yr ystafell",
           "teacher": "Athro", "referrals": "Atgyfeiriadau", "inbox": "Mewnflwch atgyfeiriadau",
           "referral": "Atgyfeiriad", "accept": "Derbyn", "close": "Cau", "sent": "Wedi'i anfon",
           "received": "Wedi dod i law", "accepted": "Wedi'i dderbyn", "closed": "Wedi'i gau",
           "outcome_error": "Disgrifiwch y canlyniad", "urgent": "Brys", "health_wellbeing": "Iechyd a llesiant",
           "raise": "Gwneud atgyfeiriad", "send": "Anfon yr atgyfeiriad", "back_referrals": "Yn ôl i'r atgyfeiriadau",
           "upn_error": "Nid yw'r UPN hwn yn ddilys: gwiriwch ef yn erbyn cofnodion yr ysgol",
           "months": ["Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf", "Awst", "Medi",
                      "Hydref", "Tachwedd", "Rhagfyr"]},
}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


class Journey:
    def __init__(self, page: Page, web: str, lang: str, shots: Path, shots_wanted: bool):
        self.page, self.web, self.lang, self.shots, self.words = page, web, lang, shots, WORDS[lang]
        self.shots_wanted = shots_wanted
        self.checked: list[str] = []

    def check(self, name: str, heading: str) -> None:
        """The page is in the chosen language, has the heading, and axe finds nothing serious or critical."""
        page = self.page
        expect(page.get_attribute("html", "lang") == self.lang, f"{name}: lang is {page.get_attribute('html', 'lang')}")
        h1 = page.inner_text("h1")
        expect(heading in h1, f"{name}: heading {h1!r} lacks {heading!r}")
        page.add_script_tag(path=str(AXE))
        results = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS)
        bad = [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
               for v in results["violations"] if v["impact"] in ("serious", "critical")]
        expect(bad == [], f"{name}: axe found {json.dumps(bad)}")
        self.checked.append(name)

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}-{self.lang}.png"), full_page=True)

    def sign_in(self, who: str, shot: bool = False) -> None:
        page, words = self.page, self.words
        page.goto(self.web + "/sign-in")
        if page.get_attribute("html", "lang") != self.lang:
            page.click(f"button[name=lang][value={self.lang}]")
        self.check("sign-in", words["sign_in"])
        if self.shots_wanted and shot:
            self.shot("sign-in")
        page.get_by_label(words[who], exact=False).first.check()
        page.locator("main").get_by_role("button", name=words["sign_in"]).click()

    def sign_out(self) -> None:
        self.page.locator("header").get_by_role("button", name=self.words["sign_out"]).click()
        expect("/sign-in" in self.page.url, f"signed out to {self.page.url}")


@contextmanager
def browsing(args, name: str, *, width: int = 1200, timeout_ms: int = 15_000, **context_options):
    """A `Journey` in headless Debian Chromium, in `args.lang`; closed after. A failure inside keeps a
    screenshot of the page it happened on (`keep_failure`) and is raised."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # axe is injected as a script; the pages' own CSP (script-src 'self') would refuse it
        context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 900},
                                      locale="en-GB" if args.lang == "en" else "cy-GB", **context_options)
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        try:
            yield Journey(page, args.web, args.lang, Path(args.shots), args.shots_wanted)
        except Exception:
            keep_failure(page, name, args.lang)
            raise
        finally:
            browser.close()


def keep_failure(page: Page, journey_name: str, lang: str) -> None:
    """A screenshot of the page where a journey failed, named on stderr for whoever reads the test's output."""
    failure = Path(tempfile.gettempdir()) / f"pont-web-{journey_name}-failure-{lang}.png"
    page.screenshot(path=str(failure), full_page=True)
    print(f"the page at the failure: {failure}", file=sys.stderr)


def script(run, *arguments: str, **typed) -> int:
    """A journey script's `main`: its required `--arguments` (`typed` ones converted, e.g. `narrow=int`) and
    `--shots-wanted`, then `run(args)`. Prints what `run` returns (the pages it checked, or a dict) as JSON;
    a failed expectation is printed and exits 1."""
    parser = argparse.ArgumentParser()
    for name in arguments:
        parser.add_argument("--" + name, required=True)
    for name, kind in typed.items():
        parser.add_argument("--" + name, type=kind, required=True)
    parser.add_argument("--shots-wanted", action="store_true")
    args = parser.parse_args()
    try:
        result = run(args)
    except AssertionError as exc:
        print(f"FAILED ({args.lang}): {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result if isinstance(result, dict) else {"lang": args.lang, "pages_checked": result}))
    return 0


def run(args) -> list[str]:
    with browsing(args, "clinic") as journey:
        page = journey.page
        words = WORDS[args.lang]
        # the nurse: sessions, create one (first forgetting the room), book, was not brought
        journey.sign_in("nurse", shot=True)
        expect(page.url.endswith("/sessions"), f"the nurse lands on {page.url}")
        journey.check("sessions", words["sessions"])
        if args.shots_wanted:
            journey.shot("sessions")
        page.locator("main").get_by_role("link", name=words["create"]).click()
        journey.check("session-new", words["create"])
        page.select_option("#site", args.site)
        page.fill("#date", args.day)
        page.fill("#start", "09:00")
        page.fill("#end", "10:00")
        page.locator("main").get_by_role("button", name=words["create_submit"]).click()
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary")
        link = page.locator(".error-summary a[href='#room']")
        expect(link.inner_text() == words["room_error"], f"error summary says {link.inner_text()!r}")
        expect(page.get_attribute("#room", "aria-invalid") == "true", "the room is not marked invalid")
        journey.check("session-new-error", words["create"])
        if args.shots_wanted:
            journey.shot("session-new-error")
        link.click()
        expect(page.evaluate("document.activeElement.id") == "room", "the summary link does not focus the field")
        page.keyboard.type(args.room)
        page.locator("main").get_by_role("button", name=words["create_submit"]).click()
        journey.check("session", args.room)
        day = date.fromisoformat(args.day)
        in_words = f"{day.day} {words['months'][day.month - 1]} {day.year}"
        expect(in_words in page.inner_text("h1"), f"the date is not {in_words!r}: {page.inner_text('h1')}")
        expect(page.locator("#slots + table tbody tr").count() == 3, "not three slots")
        page.select_option("#slot_id", index=0)
        page.fill("#upn", args.upn)
        page.fill("#given_name", "Cerys")
        page.fill("#family_name", "Jones")
        page.fill("#date_of_birth", "2015-03-14")
        page.locator("main form").get_by_role("button", name=words["book"]).click()
        journey.check("session-booked", args.room)
        expect(page.inner_text("#appointments + table tbody tr td.status") == words["booked"], "not booked")
        expect(page.inner_text("#slots + table tbody tr td:nth-child(2)") == "1 / 1", "the slot is not filling")
        if args.shots_wanted:
            journey.shot("session")
        page.locator("#appointments + table").get_by_role("button", name=words["wnb"]).click()
        expect(page.inner_text("#appointments + table tbody tr td.status") == words["wnb"],
               "the outcome is not shown")
        journey.check("session-was-not-brought", args.room)
        journey.sign_out()

        # the school's DSL: the was-not-brought reaches the review queue (an event away)
        journey.sign_in("dsl")
        expect(page.url.endswith("/reviews"), f"the DSL lands on {page.url}")
        deadline = time.monotonic() + 20
        while page.locator("main table tbody tr").count() == 0 and time.monotonic() < deadline:
            page.wait_for_timeout(200)  # polls the page until the event has arrived, within the deadline
            page.reload()
        row = page.locator("main table tbody tr").first
        expect(row.count() == 1 and words["wnb"] in row.inner_text(), "the review queue lacks the was-not-brought")
        journey.check("reviews", words["reviews"])
        if args.shots_wanted:
            journey.shot("reviews")
    return journey.checked


def main() -> int:
    return script(run, "web", "lang", "site", "room", "day", "upn", "shots")


if __name__ == "__main__":
    sys.exit(main())
