"""What a family is told, in Welsh or in English: plain Python, no framework.

Each notice is a subject and a body in the family's chosen language, with days and times in
Europe/London. An appointment notice says when and where; which service only when the family's
consent lets that service be named to them (the caller decides, `service` None otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time

LANGUAGES = ("cy", "en")
ZONE = ZoneInfo("Europe/London")
_LOCALES = {"cy": "cy", "en": "en_GB"}

SERVICES = {
    "school_nursing": {"en": "the school nurse", "cy": "nyrs yr ysgol"},
    "camhs": {"en": "the child and adolescent mental health service (CAMHS)",
              "cy": "y gwasanaeth iechyd meddwl plant a phobl ifanc (CAMHS)"},
    "social_care": {"en": "social care", "cy": "gofal cymdeithasol"},
    "youth_work": {"en": "the youth service", "cy": "y gwasanaeth ieuenctid"},
    "education_welfare": {"en": "the education welfare service", "cy": "y gwasanaeth lles addysg"},
    "families_first": {"en": "Families First", "cy": "Teuluoedd yn Gyntaf"},
}

_APPOINTMENT = {
    "en": {"subject": "An appointment at school for {name}",
           "body": "{name} has an appointment at school.\n\nWhen: {day}, {start} to {end}\nWhere: {room}",
           "with": "\nWith: {service}",
           "end": "\n\nYou are getting this because you asked Pont to tell you about {name}. "
                  "To stop these emails, change your choices on Pont's family pages."},
    "cy": {"subject": "Apwyntiad yn yr ysgol i {name}",
           "body": "Mae gan {name} apwyntiad yn yr ysgol.\n\nPryd: {day}, {start} tan {end}\nBle: {room}",
           "with": "\nGyda: {service}",
           "end": "\n\nRydych yn cael hwn oherwydd i chi ofyn i Pont roi gwybod i chi am {name}. "
                  "I atal yr e-byst hyn, newidiwch eich dewisiadau ar dudalennau teulu Pont."},
}


@dataclass(frozen=True)
class Notice:
    subject: str
    body: str


def appointment(language: str, name: str, starts_at: datetime, ends_at: datetime, room: str,
                service: str | None) -> Notice:
    words, locale = _APPOINTMENT[language], _LOCALES[language]
    start, end = starts_at.astimezone(ZONE), ends_at.astimezone(ZONE)
    body = words["body"].format(name=name, day=format_date(start.date(), "full", locale=locale),
                                start=format_time(start, "HH:mm", locale=locale),
                                end=format_time(end, "HH:mm", locale=locale), room=room)
    if service in SERVICES:
        body += words["with"].format(service=SERVICES[service][language])
    return Notice(words["subject"].format(name=name), body + words["end"].format(name=name))
