"""Welsh and English: gettext catalogues (`translations/`), and dates and times in Europe/London.

The `.po` catalogues are the source; they are compiled in memory when the service starts, so a
clean checkout needs no build step and a stale `.mo` cannot be served.
"""
from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("cy", "en")  # Welsh first, as on every bilingual sign in Wales
DEFAULT_LANGUAGE = "en"
ZONE = ZoneInfo("Europe/London")
LOCALES = {"cy": "cy_GB", "en": "en_GB"}  # British English: 3 December 2026, not December 3
TRANSLATIONS = Path(__file__).parent / "translations"


def catalogue_path(language: str) -> Path:
    return TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: str) -> Translations:
    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def choose(cookie: str | None, accept_language) -> str:
    """The remembered choice, else the browser's preference between Welsh and English."""
    if cookie in LANGUAGES:
        return cookie
    return accept_language.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) if accept_language else DEFAULT_LANGUAGE


def when(value: str | datetime, language: str) -> str:
    """An ISO timestamp as local time in Wales, in `language` (e.g. `2 Mawrth 2027, 09:00`)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(moment, format="d MMMM y, HH:mm", tzinfo=ZONE, locale=LOCALES[language])


def day(value: str | date, language: str) -> str:
    """A date in full, e.g. `Tuesday, 2 March 2027` / `Dydd Mawrth, 2 Mawrth 2027`."""
    return format_date(date.fromisoformat(value) if isinstance(value, str) else value, format="full",
                       locale=LOCALES[language])


def clock(value: str | datetime, language: str) -> str:
    """Only the time of day in Wales, e.g. `09:20`."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_time(moment, format="HH:mm", tzinfo=ZONE, locale=LOCALES[language])
