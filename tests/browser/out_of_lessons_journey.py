"""The host school's pupils out of lessons in headless Chromium, in one language; run by test_referral_journey.py.

A process of its own, like journey.py (whose Journey it uses): the teacher opens *Out of lessons*
from the menu, first asks for a day that is not a date, then chooses the day of the clinic and
reads each pupil's time, room and name, never why. Exits 1 with the failed expectation on stderr.

    python tests/browser/out_of_lessons_journey.py --web URL --lang cy --day 2027-03-02 --room R --named "Cerys Jones" \
        --unnamed 2 --withheld "low mood" --shots DIR
"""
from __future__ import annotations

import sys

from journey import browsing, expect, script
from transition_journey import sign_in_as

WORDS = {
    "en": {"menu": "Out of lessons", "heading": "Pupils out of lessons", "show": "Show",
           "problem": "There is a problem", "date_error": "Enter a date, for example 2027-03-02",
           "unnamed": "A pupil your school has not referred", "booked": "Booked"},
    "cy": {"menu": "Allan o wersi", "heading": "Disgyblion allan o wersi", "show": "Dangos",
           "problem": "Mae problem", "date_error": "Rhowch ddyddiad, er enghraifft 2027-03-02",
           "unnamed": "Disgybl nad yw eich ysgol wedi'i atgyfeirio", "booked": "Wedi'i archebu"},
}


def run(args) -> list[str]:
    words = WORDS[args.lang]
    with browsing(args, "out-of-lessons") as journey:
        page = journey.page
        sign_in_as(journey, "teacher")
        page.locator("nav").get_by_role("link", name=words["menu"]).click()
        page.wait_for_url("**/out-of-lessons")
        journey.check("out-of-lessons-today", words["heading"])

        page.goto(journey.web + "/out-of-lessons?date=not-a-day")
        expect(page.inner_text(".error-summary h2") == words["problem"], "no error summary for a bad day")
        expect(words["date_error"] in page.inner_text(".error-summary"), "the bad day is not named")
        expect(page.get_attribute("#date", "aria-invalid") == "true", "the day field is not marked")
        journey.check("out-of-lessons-error", words["heading"])

        page.fill("#date", args.day)
        page.locator("main form").get_by_role("button", name=words["show"]).click()
        page.wait_for_url(f"**/out-of-lessons?date={args.day}")
        rows = page.locator("#out-of-lessons tbody tr")
        expect(rows.count() == 1 + int(args.unnamed), f"{rows.count()} pupils listed")
        table = page.inner_text("#out-of-lessons")
        expect(args.named in table and args.room in table, f"the named pupil's room is not listed: {table!r}")
        expect(table.count(words["unnamed"]) == int(args.unnamed), f"unreferred pupils not said: {table!r}")
        expect(words["booked"] in table, f"no status: {table!r}")
        expect(args.withheld not in page.inner_text("main"), "the reason for the appointment is shown")
        journey.check("out-of-lessons", words["heading"])
        if args.shots_wanted:
            journey.shot("out-of-lessons")
    return journey.checked


def main() -> int:
    return script(run, "web", "lang", "day", "room", "named", "unnamed", "withheld", "shots")


if __name__ == "__main__":
    sys.exit(main())
