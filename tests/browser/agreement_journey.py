"""The administrator's sharing agreements in headless Chromium, in one language; run by test_agreement_journey.py.

A process of its own, like journey.py (whose Journey it uses): the administrator proposes an
agreement between two schools (first choosing one school, no purpose and no dates), sees it
waiting for both schools' approval, and revokes it (first without a reason). Exits 1 with the
failed expectation on stderr.

    python tests/browser/agreement_journey.py --web URL --lang cy --schools school:1,school:2 --shots DIR
"""
from __future__ import annotations

import sys
from datetime import date, timedelta

from journey import browsing, expect, script
from transition_journey import sign_in_as

WORDS = {
    "en": {"agreements": "Sharing agreements", "propose": "Propose an agreement", "submit": "Propose the agreement",
           "problem": "There is a problem", "parties_error": "Choose at least two organisations",
           "purposes_error": "Choose at least one purpose", "from_error": "Enter the date the agreement starts",
           "waiting": "Waiting for approval", "revoke": "Revoke", "reason_error": "Give a reason for revoking",
           "revoked": "Revoked", "none": "Your organisation is in no sharing agreement yet."},
    "cy": {"agreements": "Cytundebau rhannu", "propose": "Cynnig cytundeb", "submit": "Cynnig y cytundeb",
           "problem": "Mae problem", "parties_error": "Dewiswch o leiaf ddau sefydliad",
           "purposes_error": "Dewiswch o leiaf un diben",
           "from_error": "Rhowch y dyddiad y mae'r cytundeb yn dechrau",
           "waiting": "Yn aros am gymeradwyaeth", "revoke": "Dirymu", "reason_error": "Rhowch reswm dros ddirymu",
           "revoked": "Wedi'i ddirymu", "none": "Nid yw eich sefydliad yn rhan o unrhyw gytundeb rhannu eto."},
}


def run(args) -> list[str]:
    words = WORDS[args.lang]
    schools = args.schools.split(",")
    with browsing(args, "agreements") as journey:
        page = journey.page
        sign_in_as(journey, "admin")
        expect(page.url.endswith("/agreements"), f"the administrator lands on {page.url}")
        journey.check("agreements-none", words["agreements"])
        expect(words["none"] in page.inner_text("main"), "the empty list is not said")
        page.locator("main").get_by_role("link", name=words["propose"]).click()
        journey.check("agreement-new", words["propose"])
        page.check(f"input[name=parties][value='{schools[0]}']")
        page.check("#categories-education")
        page.locator("main form").get_by_role("button", name=words["submit"]).click()
        page.wait_for_selector(".error-summary")
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary")
        summary = page.inner_text(".error-summary")
        for message in (words["parties_error"], words["purposes_error"], words["from_error"]):
            expect(message in summary, f"the summary lacks {message!r}: {summary!r}")
        expect(page.get_attribute("#parties-0", "aria-invalid") == "true", "the organisations are not marked")
        expect(page.is_checked("#categories-education"), "the answers were not kept")
        journey.check("agreement-new-error", words["propose"])
        if args.shots_wanted:
            journey.shot("agreement-new-error")
        page.locator(".error-summary a[href='#valid_from']").click()
        expect(page.evaluate("document.activeElement.id") == "valid_from", "the summary link does not focus")
        page.check(f"input[name=parties][value='{schools[1]}']")
        page.check("#purposes-transition")
        page.check("#categories-attendance")
        page.fill("#valid_from", date.today().isoformat())
        page.fill("#valid_to", (date.today() + timedelta(days=365)).isoformat())
        page.locator("main form").get_by_role("button", name=words["submit"]).click()
        page.wait_for_url("**/agreements?done=proposed")

        agreement = page.locator("main section.agreement")
        expect(agreement.count() == 1, f"{agreement.count()} agreements listed")
        text = agreement.inner_text()
        expect(words["waiting"] in text and all(school in text for school in schools),
               f"not waiting for both schools: {text!r}")
        journey.check("agreements", words["agreements"])
        if args.shots_wanted:
            journey.shot("agreements")
        agreement.get_by_role("button", name=words["revoke"]).click()
        page.wait_for_selector(".error-summary")
        link = page.locator(".error-summary a[href^='#reason-']")
        expect(link.count() == 1 and link.inner_text() == words["reason_error"], "no reason asked for")
        journey.check("agreement-revoke-error", words["agreements"])
        link.click()
        page.keyboard.type("The schools now share through the regional protocol")
        page.locator("main section.agreement").get_by_role("button", name=words["revoke"]).click()
        page.wait_for_url("**/agreements?done=revoked")
        status = page.inner_text("main section.agreement dd.status")
        expect(status == words["revoked"], f"the agreement is {status!r}")
        expect(page.locator("main section.agreement form").count() == 0, "a revoked agreement offers actions")
        journey.check("agreements-revoked", words["agreements"])
    return journey.checked


def main() -> int:
    return script(run, "web", "lang", "schools", "shots")


if __name__ == "__main__":
    sys.exit(main())
