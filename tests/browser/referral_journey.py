"""One referral journey in headless Chromium, in one language; run by test_referral_journey.py.

A process of its own, like journey.py (whose Journey it uses): the school's teacher raises a
referral for a pupil whose parent consented (first with a UPN the gateway refuses), the agency's
nurse finds it in the inbox, accepts it, closes it with an outcome (first forgetting the outcome),
and the teacher sees it closed. Exits 1 with the failed expectation on stderr.

    python tests/browser/referral_journey.py --web URL --lang cy --to health:x --upn A661... --shots DIR
"""
from __future__ import annotations

import sys
import time

from journey import WORDS, browsing, expect, script
from playwright.sync_api import Page


def row_of(page: Page, referral_id: str):
    """The table row that links to the referral."""
    return page.locator("main table tbody tr").filter(has=page.locator(f"a[href='/referrals/{referral_id}']"))


def until_shown(page: Page, referral_id: str, text: str, seconds: float = 20) -> None:
    """Reload the list until the referral's row shows `text` (an event away), within the deadline."""
    deadline = time.monotonic() + seconds
    while text not in (row_of(page, referral_id).inner_text() if row_of(page, referral_id).count() else ""):
        expect(time.monotonic() < deadline, f"the row of {referral_id} never showed {text!r}")
        page.wait_for_timeout(200)
        page.reload()


def run(args) -> list[str]:
    with browsing(args, "referral") as journey:
        page = journey.page
        words = WORDS[args.lang]
        # the teacher: the school's referrals, raise one (the gateway first refusing the UPN), sent
        journey.sign_in("teacher")
        expect(page.url.endswith("/referrals"), f"the teacher lands on {page.url}")
        journey.check("referrals", words["referrals"])
        page.locator("main").get_by_role("link", name=words["raise"]).click()
        journey.check("referral-new", words["raise"])
        wrong = ("B" if args.upn[0] != "B" else "C") + args.upn[1:]  # its check letter no longer fits
        page.fill("#upn", wrong)
        page.fill("#given_name", "Cerys")
        page.fill("#family_name", "Jones")
        page.fill("#date_of_birth", "2015-03-14")
        page.select_option("#to_org", args.to)
        page.select_option("#service", "school_nursing")
        page.check("#urgency-urgent")
        page.fill("#reason", "low mood")
        page.fill("#details", "Withdrawn in class for three weeks.")
        page.check("#share-health_wellbeing")
        page.fill("#info-health_wellbeing", "Reports poor sleep.")
        page.locator("main form").get_by_role("button", name=words["send"]).click()
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary")
        link = page.locator(".error-summary a[href='#upn']")
        expect(link.count() == 1 and link.inner_text() == words["upn_error"],
               f"the summary does not name the UPN: {page.inner_text('.error-summary')!r}")
        expect(page.get_attribute("#upn", "aria-invalid") == "true", "the UPN is not marked invalid")
        expect(page.is_checked("#share-health_wellbeing") and page.is_checked("#urgency-urgent"),
               "the answers were not kept")
        journey.check("referral-new-error", words["raise"])
        if args.shots_wanted:
            journey.shot("referral-new-error")
        link.click()
        expect(page.evaluate("document.activeElement.id") == "upn", "the summary link does not focus the UPN")
        page.fill("#upn", args.upn)
        page.locator("main form").get_by_role("button", name=words["send"]).click()
        journey.check("referral-raised", words["referral"])
        expect(page.inner_text("#referral-status") == words["sent"], "the referral is not sent")
        referral = page.url.rstrip("/").rsplit("/", 1)[1]
        page.locator("main").get_by_role("link", name=words["back_referrals"]).click()
        expect(words["sent"] in row_of(page, referral).inner_text(), "the list does not show it sent")
        journey.check("referrals-sent", words["referrals"])
        journey.sign_out()

        # the nurse: the inbox (from the menu; the disclosure is an event away), the referral, accept, close
        journey.sign_in("nurse")
        page.locator("header nav").get_by_role("link", name=words["inbox"]).click()
        until_shown(page, referral, words["received"])
        journey.check("inbox", words["inbox"])
        row = row_of(page, referral)
        expect(words["urgent"] in row.inner_text() and words["received"] in row.inner_text(),
               f"the inbox row says {row.inner_text()!r}")
        if args.shots_wanted:
            journey.shot("inbox")
        row.get_by_role("link").click()
        journey.check("referral", words["referral"])
        expect(page.inner_text("#referral-status") == words["received"], "the referral is not received")
        shared = page.inner_text("main")
        expect(words["health_wellbeing"] in shared and "Reports poor sleep." in shared,
               "what was shared is not shown")
        if args.shots_wanted:
            journey.shot("referral")
        page.locator("main").get_by_role("button", name=words["accept"], exact=True).click()
        expect(page.inner_text("#referral-status") == words["accepted"], "the referral is not accepted")
        journey.check("referral-accepted", words["referral"])
        page.locator("main").get_by_role("button", name=words["close"], exact=True).click()
        link = page.locator(".error-summary a[href='#outcome']")
        expect(link.inner_text() == words["outcome_error"], "the missing outcome is not summarised")
        expect(page.get_attribute("#outcome", "aria-invalid") == "true", "the outcome is not marked invalid")
        journey.check("referral-close-error", words["referral"])
        if args.shots_wanted:
            journey.shot("referral-close-error")
        link.click()
        expect(page.evaluate("document.activeElement.id") == "outcome", "the summary link does not focus it")
        page.keyboard.type("Six sessions; sleeping better.")
        page.select_option("#outcome_code", "support_completed")
        page.locator("main").get_by_role("button", name=words["close"], exact=True).click()
        expect(page.inner_text("#referral-status") == words["closed"], "the referral is not closed")
        journey.check("referral-closed", words["referral"])
        journey.sign_out()

        # the teacher again: the list shows it closed once the agency's decision has reached Pont
        journey.sign_in("teacher")
        until_shown(page, referral, words["closed"])
        journey.check("referrals-closed", words["referrals"])
        if args.shots_wanted:
            journey.shot("referrals")
        row_of(page, referral).get_by_role("link").click()
        journey.check("referral-school", words["referral"])
        chronology = page.inner_text("#chronology + table")
        expect(words["accepted"] in chronology and words["closed"] in chronology,
               f"the chronology lacks the agency's steps: {chronology!r}")
        if args.shots_wanted:
            journey.shot("referral-school")
    return journey.checked


def main() -> int:
    return script(run, "web", "lang", "to", "upn", "shots")


if __name__ == "__main__":
    sys.exit(main())
