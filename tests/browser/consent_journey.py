"""A referral held for want of consent, in headless Chromium, in one language; run by test_referral_journey.py.

A process of its own, like journey.py (whose Journey it uses): the school's teacher fills in a
referral for a pupil no consent covers and sees, as they go (each kind of information ticked joins
the live preview) and with the preview button, that everything would be held; raises it, and it waits;
records the parent's consent from the referral's page (first forgetting who gave it); the
referral is released once consent's event has reached referrals; the teacher finds the pupil by
name and sees the consent; the nurse accepts and closes it; the teacher sees the whole
chronology, then withdraws the consent on the pupil's consents page (first forgetting the
reason); the DSL finds the pupil and reads what was shared about them: the disclosure to the
nurse's organisation, and the withdrawal. Exits 1 with the failed expectation on stderr.

    python tests/browser/consent_journey.py --web URL --lang cy --to health:x --upn A661... --shots DIR
"""
from __future__ import annotations

import sys
import time

from journey import WORDS, browsing, expect, script
from playwright.sync_api import Page
from referral_journey import row_of, until_shown

CONSENT_WORDS = {
    "en": {"awaiting": "Awaiting consent", "record": "Record consent", "given_by_error":
           "Enter the name of the person who gave consent", "consents": "Consent",
           "pupils_consents": "The pupil's consents", "active": "Active", "withdrawn": "Withdrawn",
           "withdraw": "Withdraw consent", "reason_error": "Give the reason for withdrawing",
           "find": "Find a pupil", "find_button": "Find", "preview": "Preview what will be shared",
           "nothing": "Nothing", "shared": "What was shared about this pupil", "shared_kind": "Shared",
           "withdrawn_kind": "Consent withdrawn", "contact": "Contact details", "shared_link": "What was shared"},
    "cy": {"awaiting": "Yn aros am gydsyniad", "record": "Cofnodi cydsyniad", "given_by_error":
           "Rhowch enw'r person a roddodd gydsyniad", "consents": "Cydsyniad",
           "pupils_consents": "Cydsyniadau'r disgybl", "active": "Mewn grym", "withdrawn": "Wedi'i dynnu'n ôl",
           "withdraw": "Tynnu cydsyniad yn ôl", "reason_error": "Rhowch y rheswm dros dynnu'n ôl",
           "find": "Dod o hyd i ddisgybl", "find_button": "Chwilio",
           "preview": "Rhagweld beth fydd yn cael ei rannu", "nothing": "Dim",
           "shared": "Beth a rannwyd am y disgybl hwn", "shared_kind": "Rhannwyd",
           "withdrawn_kind": "Tynnwyd cydsyniad yn ôl", "contact": "Manylion cyswllt", "shared_link": "Beth a rannwyd"},
}


def until_status(page: Page, status: str, seconds: float = 20) -> None:
    """Reload the referral's page until its status is `status` (an event away), within the deadline."""
    deadline = time.monotonic() + seconds
    while page.inner_text("#referral-status") != status:
        expect(time.monotonic() < deadline, f"the referral never became {status!r}")
        page.wait_for_timeout(200)
        page.reload()


def run(args) -> list[str]:
    with browsing(args, "consent") as journey:
        page = journey.page
        words = {**WORDS[args.lang], **CONSENT_WORDS[args.lang]}
        # the teacher raises a referral that no consent covers: it waits
        journey.sign_in("teacher")
        page.locator("main").get_by_role("link", name=words["raise"]).click()
        page.fill("#upn", args.upn)
        page.fill("#given_name", "Osian")
        page.fill("#family_name", "Evans")
        page.fill("#date_of_birth", "2014-09-30")
        page.select_option("#to_org", args.to)
        page.select_option("#service", "school_nursing")
        page.fill("#reason", "headaches")
        page.fill("#details", "Asks to go home most afternoons.")
        # once the form is complete its preview follows in the live region (pont.js): with no consent, the
        # contact details ticked to begin with are held; ticking another kind of information holds it too
        expect(page.get_attribute("#preview-region", "aria-live") == "polite", "the preview is not read out")
        live = page.locator("#preview-region #preview-held")
        page.locator("#details").blur()
        live.filter(has_text=words["contact"]).wait_for()
        expect(words["health_wellbeing"] not in live.inner_text(), f"the live preview holds {live.inner_text()!r}")
        page.check("#share-health_wellbeing")
        live.filter(has_text=words["health_wellbeing"]).wait_for()
        page.fill("#info-health_wellbeing", "Headaches after lunch.")
        # the preview button (no JavaScript needed) shows the same
        page.locator("main form").get_by_role("button", name=words["preview"]).click()
        journey.check("referral-preview", words["raise"])
        shared, held = page.inner_text("#preview-shared"), page.inner_text("#preview-held")
        expect(shared.strip() == words["nothing"] and words["health_wellbeing"] in held,
               f"the preview shares {shared!r} and holds {held!r}")
        expect(page.input_value("#info-health_wellbeing") == "Headaches after lunch.", "the answers were lost")
        if args.shots_wanted:
            journey.shot("referral-preview")
        page.locator("main form").get_by_role("button", name=words["send"]).click()
        journey.check("referral-held", words["referral"])
        expect(page.inner_text("#referral-status") == words["awaiting"], "the referral is not held")
        referral = page.url.rstrip("/").rsplit("/", 1)[1]
        if args.shots_wanted:
            journey.shot("referral-held")

        # consent, recorded from the referral's page: the form comes filled in from the referral
        page.locator("#consent").get_by_role("link", name=words["record"]).click()
        journey.check("consent-new", words["record"])
        expect(page.input_value("#upn") == args.upn and page.input_value("#family_name") == "Evans",
               "the pupil is not filled in from the referral")
        expect(page.is_checked("#recipient-0") and page.is_checked("#purpose-referral")
               and page.is_checked("#category-health_wellbeing") and page.is_checked("#category-contact"),
               "what the referral shares is not filled in")
        page.locator("main form").get_by_role("button", name=words["record"]).click()
        link = page.locator(".error-summary a[href='#given_by_name']")
        expect(link.count() == 1 and link.inner_text() == words["given_by_error"],
               f"the summary does not name who gave consent: {page.inner_text('main')[:300]!r}")
        expect(page.get_attribute("#given_by_name", "aria-invalid") == "true", "the name is not marked invalid")
        expect(page.input_value("#upn") == args.upn and page.is_checked("#category-health_wellbeing"),
               "the answers were not kept")
        journey.check("consent-new-error", words["record"])
        if args.shots_wanted:
            journey.shot("consent-new-error")
        link.click()
        expect(page.evaluate("document.activeElement.id") == "given_by_name", "the link does not focus the name")
        page.keyboard.type("Sian Evans")
        page.locator("main form").get_by_role("button", name=words["record"]).click()

        # back on the referral: released once consent.granted has reached referrals
        expect(page.url.split("?")[0].endswith(f"/referrals/{referral}"), f"not back on the referral: {page.url}")
        journey.check("referral-consent-recorded", words["referral"])
        until_status(page, words["sent"])
        journey.check("referral-released", words["referral"])

        # the pupil, found by name from the menu: their consents
        page.locator("header nav").get_by_role("link", name=words["find"]).click()
        journey.check("pupils", words["find"])
        page.fill("#q", "osian ev")
        page.locator("main form").get_by_role("button", name=words["find_button"]).click()
        found = page.locator("#pupils tbody tr").filter(has_text=args.upn)  # the other language's run: another
        expect(found.count() == 1, "the pupil is not found by name")
        journey.check("pupils-found", words["find"])
        if args.shots_wanted:
            journey.shot("pupils")
        found.get_by_role("link", name="Osian Evans").click()
        journey.check("consents", words["consents"])
        expect(words["active"] in page.inner_text("main .consent .status"), "the consent is not shown active")
        if args.shots_wanted:
            journey.shot("consents")
        journey.sign_out()

        # the nurse: the inbox, accept, close
        journey.sign_in("nurse")
        page.locator("header nav").get_by_role("link", name=words["inbox"]).click()
        until_shown(page, referral, words["received"])
        row_of(page, referral).get_by_role("link").click()
        expect("Headaches after lunch." in page.inner_text("main"), "what was shared is not shown")
        page.locator("main").get_by_role("button", name=words["accept"], exact=True).click()
        expect(page.inner_text("#referral-status") == words["accepted"], "the referral is not accepted")
        page.fill("#outcome", "Seen twice; eyesight test arranged.")
        page.locator("main").get_by_role("button", name=words["close"], exact=True).click()
        expect(page.inner_text("#referral-status") == words["closed"], "the referral is not closed")
        journey.check("referral-closed", words["referral"])
        journey.sign_out()

        # the teacher: the chronology from held to closed, then the parent withdraws consent
        journey.sign_in("teacher")
        until_shown(page, referral, words["closed"])
        row_of(page, referral).get_by_role("link").click()
        chronology = [text.strip() for text in
                      page.locator("#chronology + table tbody tr td:nth-child(2)").all_inner_texts()]
        expect(chronology == [words["awaiting"], words["sent"], words["accepted"], words["closed"]],
               f"the chronology is {chronology!r}")
        journey.check("referral-chronology", words["referral"])
        if args.shots_wanted:
            journey.shot("referral-held-then-closed")
        page.locator("main").get_by_role("link", name=words["pupils_consents"]).click()
        page.locator("main .consent").get_by_role("button", name=words["withdraw"]).click()
        link = page.locator(".error-summary a")
        expect(link.count() == 1 and link.inner_text() == words["reason_error"],
               "the missing reason is not summarised")
        journey.check("consents-withdraw-error", words["consents"])
        link.click()
        expect((page.evaluate("document.activeElement.id") or "").startswith("reason-"),
               "the link does not focus the reason")
        page.keyboard.type("The parent asked by phone.")
        page.locator("main .consent").get_by_role("button", name=words["withdraw"]).click()
        expect(words["withdrawn"] in page.inner_text("main .consent .status"), "the consent is not withdrawn")
        expect(page.locator("main .consent form").count() == 0, "a withdrawn consent can still be withdrawn")
        journey.check("consents-withdrawn", words["consents"])
        consents_page = page.url
        journey.sign_out()

        # the DSL: from the pupil found, what was shared about them, with whom and why, and the withdrawal;
        # the pupil's consents link back to it
        journey.sign_in("dsl")
        page.locator("header nav").get_by_role("link", name=words["find"]).click()
        page.fill("#q", args.upn)
        page.locator("main form").get_by_role("button", name=words["find_button"]).click()
        journey.check("pupils-found-dsl", words["find"])
        page.locator("#pupils tbody tr").get_by_role("link", name=words["shared_link"]).click()
        journey.check("child-shared", words["shared"])
        shared_page = page.url
        kinds = [text.strip() for text in page.locator("main table tbody tr td:nth-child(2)").all_inner_texts()]
        expect(kinds == [words["withdrawn_kind"], words["shared_kind"]], f"the ledger shows {kinds!r}")
        expect(args.to in page.inner_text("main table tbody tr:nth-child(2)"), "the disclosure's recipient")
        if args.shots_wanted:
            journey.shot("child-shared")
        page.locator("main").get_by_role("link", name=words["pupils_consents"]).click()
        expect(page.url == consents_page, f"the ledger's consents link goes to {page.url}")
        page.locator("main").get_by_role("link", name=words["shared"]).click()
        expect(page.url == shared_page, f"the consents' ledger link goes to {page.url}")
    return journey.checked


def main() -> int:
    return script(run, "web", "lang", "to", "upn", "shots")


if __name__ == "__main__":
    sys.exit(main())
