"""A family in the loop, in headless Chromium, in one language; run by test_referral_journey.py.

A process of its own, like journey.py (whose Journey it uses): the teacher invites the pupil's
parent (first forgetting the pupil) and reads the one-time code off the page; the DSL keeps one
disclosure (the one of contact details alone) out of the family's view; the parent signs in on a phone-sized
screen, first types a wrong code, then the right one, sees the consent staff recorded, withdraws
it, reads what was shared: the other disclosure and the withdrawal, never the one kept; and gives
the consent the nurse asked of them.
Exits 1 with the failed expectation on stderr.

    python tests/browser/family_journey.py --web URL --lang cy --upn A661... --given_name Cerys \
        --family_name Jones --date_of_birth 2015-03-14 --child_ref c_... --shots DIR
"""
from __future__ import annotations

import re
import sys

from journey import browsing, expect, script
from transition_journey import sign_in_as

WORDS = {
    "en": {"invite": "Invite a family", "create": "Create the invitation", "problem": "There is a problem",
           "upn_error": "Enter the pupil's UPN", "shared": "What was shared about this pupil",
           "keep": "Keep from the family", "keep_submit": "Keep it from the family", "kept": "Kept from the family",
           "children": "Your children", "link": "Link this child", "code_error": "That code does not work",
           "withdraw": "Withdraw consent", "withdrawn": "Withdrawn", "active": "Active",
           "history": "What was shared about your child", "consent_withdrawn": "Consent withdrawn",
           "shared_with": "shared information with", "health": "Health service",
           "contact": "Contact details", "health_wellbeing": "Health and wellbeing",
           "preferences": "How we contact you", "save": "Save your choices", "saved": "Your choices are saved.",
           "yes": "Yes, I consent", "portal": "Through the family portal"},
    "cy": {"invite": "Gwahodd teulu", "create": "Creu'r gwahoddiad", "problem": "Mae problem",
           "upn_error": "Rhowch UPN y disgybl", "shared": "Beth a rannwyd am y disgybl hwn",
           "keep": "Cadw rhag y teulu", "keep_submit": "Ei gadw rhag y teulu", "kept": "Wedi'i gadw rhag y teulu",
           "children": "Eich plant", "link": "Cysylltu'r plentyn hwn", "code_error": "Nid yw'r cod hwnnw'n gweithio",
           "withdraw": "Tynnu cydsyniad yn ôl", "withdrawn": "Wedi'i dynnu'n ôl", "active": "Mewn grym",
           "history": "Beth a rannwyd am eich plentyn", "consent_withdrawn": "Tynnwyd cydsyniad yn ôl",
           "shared_with": "wybodaeth gyda", "health": "Gwasanaeth iechyd",
           "contact": "Manylion cyswllt", "health_wellbeing": "Iechyd a llesiant",
           "preferences": "Sut rydym yn cysylltu â chi", "save": "Cadw eich dewisiadau",
           "saved": "Mae eich dewisiadau wedi'u cadw.", "yes": "Ydw, rwy'n cydsynio",
           "portal": "Drwy borth y teulu"},
}
PHONE = {"width": 390, "height": 844}


def run(args) -> list[str]:
    words = WORDS[args.lang]
    with browsing(args, "family") as journey:
        page = journey.page

        def shot(name: str) -> None:
            if args.shots_wanted:
                journey.shot(name)

        # the school: invite the pupil's parent; the code is shown once
        sign_in_as(journey, "teacher")
        page.locator("nav").get_by_role("link", name=words["invite"]).click()
        page.wait_for_url("**/family-invites/new")
        journey.check("family-invite", words["invite"])
        page.locator("main form").get_by_role("button", name=words["create"]).click()
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary")
        expect(words["upn_error"] in page.inner_text(".error-summary"), "the missing UPN is not named")
        expect(page.get_attribute("#upn", "aria-invalid") == "true", "the UPN field is not marked")
        journey.check("family-invite-error", words["invite"])
        for field, value in (("upn", args.upn), ("given_name", args.given_name), ("family_name", args.family_name),
                             ("date_of_birth", args.date_of_birth)):
            page.fill(f"#{field}", value)
        page.locator("main form").get_by_role("button", name=words["create"]).click()
        page.wait_for_selector("#invite-code")
        code = page.inner_text("#invite-code").strip()
        expect(re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", code) is not None, f"not a code: {code!r}")
        journey.check("family-invite-created", words["invite"])
        shot("family-invite")
        journey.sign_out()

        # the DSL: one disclosure kept from the family, with a reason and a review date
        sign_in_as(journey, "dsl")
        page.goto(f"{journey.web}/children/{args.child_ref}/shared")
        journey.check("child-shared", words["shared"])
        rows = page.locator("main table tbody tr").filter(has_text=words["keep"])
        kept_row = [row for row in rows.all()
                    if row.locator("td").nth(5).inner_text().strip() == words["contact"]]
        expect(len(kept_row) == 1, "not one disclosure of contact details alone to keep")
        kept_row[0].get_by_role("link", name=words["keep"]).click()
        journey.check("family-exempt", words["keep"])
        page.fill("#reason", "Section 47 enquiry under way")
        page.locator("main form").get_by_role("button", name=words["keep_submit"]).click()
        page.wait_for_url(f"**/children/{args.child_ref}/shared")
        expect(page.locator("main table").inner_text().count(words["kept"]) >= 2,
               "the disclosure is not shown as kept, nor the marking in the ledger")
        journey.sign_out()

        # the parent, on a phone: a wrong code, then the school's; the consent; withdraw it; the history
        page.set_viewport_size(PHONE)
        sign_in_as(journey, "parent")
        page.wait_for_url("**/family")
        journey.check("family", words["children"])
        page.fill("#code", "AAAA-BBBB-CCCC-DDDD")
        page.locator("main form").get_by_role("button", name=words["link"]).click()
        expect(words["code_error"] in page.inner_text(".error-summary"), "a wrong code is not refused")
        expect(page.get_attribute("#code", "aria-invalid") == "true", "the code field is not marked")
        journey.check("family-code-error", words["children"])
        page.fill("#code", code.lower())
        page.locator("main form").get_by_role("button", name=words["link"]).click()
        page.wait_for_url(f"**/family/children/{args.child_ref}")
        journey.check("family-child", args.given_name)
        fits(page, "family-child")
        expect(page.locator("section.consent--asked").count() == 1, "the nurse's request is not asked")
        consent = page.locator("section.consent:not(.consent--asked)")
        expect(consent.count() == 1 and words["active"] in consent.inner_text(), "not the one active consent")
        expect(words["health"] in consent.inner_text(), "the recipient is not said in plain words")
        shot("family-child")
        consent.get_by_role("button", name=words["withdraw"]).click()
        page.wait_for_url(f"**/family/children/{args.child_ref}?done=withdrawn")
        expect(words["withdrawn"] in page.inner_text("section.consent:not(.consent--asked)"),
               "the consent is not shown withdrawn")
        history = page.locator("ul.history li")
        told = history.all_inner_texts()
        expect(len(told) == 2, f"not the disclosure and the withdrawal: {told}")
        expect(words["consent_withdrawn"] in told[0], f"the withdrawal is not newest: {told[0]!r}")
        expect(words["shared_with"] in told[1] and words["health_wellbeing"] in told[1],
               f"the nurse's disclosure is not told: {told[1]!r}")
        journey.check("family-child-withdrawn", args.given_name)
        fits(page, "family-child-withdrawn")
        shot("family-child-withdrawn")

        # what the nurse asked: given here, as the parent, through the portal
        page.locator("section.consent--asked").get_by_role("button", name=words["yes"]).click()
        page.wait_for_url(f"**/family/children/{args.child_ref}?done=given")
        expect(page.locator("section.consent--asked").count() == 0, "the request is still asked")
        given = [text for text in page.locator("section.consent").all_inner_texts() if words["active"] in text]
        expect(len(given) == 1 and words["portal"] in given[0], f"the consent given is not shown: {given}")
        journey.check("family-child-given", args.given_name)

        # how they are told, in their language
        page.locator("nav").get_by_role("link", name=words["preferences"]).click()
        page.wait_for_url("**/family/preferences")
        journey.check("family-preferences", words["preferences"])
        page.check("#channel-email")
        page.fill("#email", "rhian@example.cymru")
        page.check(f"#language-{args.lang}")
        page.locator("main form").get_by_role("button", name=words["save"]).click()
        page.wait_for_url("**/family/preferences?saved=1")
        expect(words["saved"] in page.inner_text("main"), "the choices are not confirmed")
        expect(page.is_checked(f"#language-{args.lang}") and page.input_value("#email") == "rhian@example.cymru",
               "the choices are not kept")
        journey.check("family-preferences-saved", words["preferences"])
    return journey.checked


def fits(page, name: str) -> None:
    """Nothing on the page is wider than the phone's screen (no sideways scrolling)."""
    expect(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"),
           f"{name}: wider than a phone's screen")


def main() -> int:
    return script(run, "web", "lang", "upn", "given_name", "family_name", "date_of_birth", "child_ref", "shots")


if __name__ == "__main__":
    sys.exit(main())
