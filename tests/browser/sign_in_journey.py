"""Signing in at the organisation's identity provider in headless Chromium, in one language; run by
test_sign_in_journey.py.

A process of its own, like journey.py (whose Journey it uses): /sign-in sends the browser to the
provider, which signs its user in at once and sends it back; the nurse lands on their clinic
sessions. Then an answer that belongs to no sign-in of this browser is refused with a page saying
so, whose "Try again" signs in afresh; signing out ends on a page saying so. Exits 1 with the
failed expectation on stderr.

    python tests/browser/sign_in_journey.py --web URL --lang cy --name "Nyrs Saith" --shots DIR
"""
from __future__ import annotations

import sys

from journey import browsing, expect, script

WORDS = {
    "en": {"sessions": "Clinic sessions", "failed": "Sign-in did not complete", "again": "Try again",
           "sign_out": "Sign out", "signed_out": "Signed out"},
    "cy": {"sessions": "Sesiynau clinig", "failed": "Ni chwblhawyd y mewngofnodi", "again": "Rhowch gynnig arall arni",
           "sign_out": "Allgofnodi", "signed_out": "Wedi allgofnodi"},
}


def run(args) -> list[str]:
    words = WORDS[args.lang]
    with browsing(args, "sign-in") as journey:
        page = journey.page
        page.goto(args.web + "/sign-in")   # to the provider and back
        expect(page.url.endswith("/sessions"), f"the nurse lands on {page.url}")
        journey.check("sessions", words["sessions"])
        expect(args.name in page.inner_text("header"), "the header does not name who is signed in")

        page.goto(args.web + "/sign-in/callback?code=forged&state=forged")
        journey.check("sign-in-failed", words["failed"])
        if args.shots_wanted:
            journey.shot("sign-in-failed")
        page.locator("main").get_by_role("link", name=words["again"]).click()
        page.wait_for_url("**/sessions")
        journey.check("sessions", words["sessions"])

        # signing out stays signed out (not straight back through the provider)
        page.locator("header").get_by_role("button", name=words["sign_out"]).click()
        expect(page.url.endswith("/signed-out"), f"signed out to {page.url}")
        journey.check("signed-out", words["signed_out"])
    return journey.checked


if __name__ == "__main__":
    sys.exit(script(run, "web", "lang", "name", "shots"))
