"""Every user-facing string is catalogued and has its Welsh; templates hold no uncatalogued text."""
from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from web import i18n

WEB = Path(i18n.__file__).parent
# what a template may show untranslated: names, not words of either language
UNTRANSLATED = {"Pont", "English", "Cymraeg", "UPN"}


def catalogue(language: str):
    with i18n.catalogue_path(language).open("rb") as po:
        return read_po(po, locale=language)


def used_strings() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    return {message for _file, _line, message, _comments, _context in extract_from_dir(WEB, method_map)
            if isinstance(message, str)}


def test_every_welsh_message_has_a_non_empty_translation():
    cy = catalogue("cy")
    untranslated = [m.id for m in cy if m.id and not (m.string or "").strip()]
    assert len(cy) > 50 and untranslated == []


def test_every_string_the_pages_use_is_in_both_catalogues_and_nothing_stale_remains():
    used = used_strings()
    for language in i18n.LANGUAGES:
        held = {m.id for m in catalogue(language) if m.id}
        assert used - held == set(), f"{language} lacks these; run pybabel extract/update (README)"
        assert held - used == set(), f"{language} holds strings no page uses"


def test_templates_show_no_text_outside_the_catalogue():
    for template in sorted((WEB / "templates").glob("*.html")):
        text = template.read_text()
        text = re.sub(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", " ", text, flags=re.S)  # Jinja
        text = re.sub(r"<!doctype[^>]*>|<[^>]+>", " ", text, flags=re.S | re.I)  # HTML tags and attributes
        text = re.sub(r'[\w-]+="[^"]*"', " ", text)  # attributes a macro writes into its caller's tag
        words = set(re.findall(r"[^\W\d_]{2,}", text)) - UNTRANSLATED
        assert words == set(), f"{template.name} shows untranslated text: {sorted(words)}"


def test_the_welsh_is_what_the_pages_show_in_welsh():
    cy = i18n.translations("cy")
    assert [cy.gettext(m) for m in ("Sign in", "Clinic sessions", "Was not brought", "Attended", "Cancel",
                                    "Book a pupil", "Review queue", "Language")] == [
        "Mewngofnodi", "Sesiynau clinig", "Ni ddaethpwyd ag ef/hi", "Mynychodd", "Canslo", "Archebu disgybl",
        "Ciw adolygu", "Iaith"]


def test_dates_and_times_are_local_to_wales_in_the_chosen_language():
    summer = "2027-07-02T08:30:00+00:00"  # 09:30 British Summer Time
    assert i18n.when(summer, "cy") == "2 Gorffennaf 2027, 09:30"
    assert i18n.when(summer, "en") == "2 July 2027, 09:30"
    assert i18n.day("2027-03-02", "cy") == "Dydd Mawrth, 2 Mawrth 2027"
    assert i18n.day("2026-12-03", "en") == "Thursday, 3 December 2026"
    assert i18n.clock("2027-01-05T09:00:00+00:00", "en") == "09:00"
