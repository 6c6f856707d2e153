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


ORGANISATION_KINDS = {
    "school": {"en": "School", "cy": "Ysgol"}, "health": {"en": "Health service", "cy": "Gwasanaeth iechyd"},
    "social_care": {"en": "Social care", "cy": "Gofal cymdeithasol"},
    "youth_work": {"en": "Youth work", "cy": "Gwaith ieuenctid"},
    "local_authority": {"en": "Local authority", "cy": "Awdurdod lleol"},
}
CATEGORIES = {
    "contact": {"en": "contact details", "cy": "manylion cyswllt"}, "education": {"en": "education", "cy": "addysg"},
    "attendance": {"en": "attendance", "cy": "presenoldeb"},
    "aln": {"en": "additional learning needs", "cy": "anghenion dysgu ychwanegol"},
    "health_wellbeing": {"en": "health and wellbeing", "cy": "iechyd a llesiant"},
    "safeguarding": {"en": "safeguarding", "cy": "diogelu"},
    "family_context": {"en": "family context", "cy": "cyd-destun teuluol"},
}
_FAMILY_PAGES = {"en": "\n\nSee it on Pont's family pages.", "cy": "\n\nGwelwch hyn ar dudalennau teulu Pont."}
_CONSENT_REQUESTED = {
    "en": {"subject": "Your consent is asked for {name}",
           "body": "The school asks for your consent to share information about {name} with {orgs}.\n\n"
                   "What: {categories}\n\nYou can give it, or not, on Pont's family pages."},
    "cy": {"subject": "Gofynnir am eich cydsyniad ar gyfer {name}",
           "body": "Mae'r ysgol yn gofyn am eich cydsyniad i rannu gwybodaeth am {name} gyda {orgs}.\n\n"
                   "Beth: {categories}\n\nGallwch ei roi, neu beidio, ar dudalennau teulu Pont."},
}
_TRANSITION_SENT = {
    "en": {"subject": "{name}'s record was sent to their new school",
           "body": "{name}'s transition record was sent to the new school: only what your consent allows.\n\n"
                   "The school: {school}"},
    "cy": {"subject": "Anfonwyd cofnod {name} i'r ysgol newydd",
           "body": "Anfonwyd cofnod pontio {name} i'r ysgol newydd: dim ond yr hyn y mae eich cydsyniad yn ei "
                   "ganiatáu.\n\nYr ysgol: {school}"},
}
_CONSENT_ENDING = {
    "en": {"subject": "A consent about {name} ends soon",
           "body": "Your consent to share information about {name} ends soon. After that, nothing more is "
                   "shared on it unless you give it again.\n\nWith: {orgs}\nEnds on: {day}"},
    "cy": {"subject": "Mae cydsyniad am {name} yn dod i ben cyn bo hir",
           "body": "Mae eich cydsyniad i rannu gwybodaeth am {name} yn dod i ben cyn bo hir. Ar ôl hynny, ni "
                   "chaiff dim mwy ei rannu arno oni bai eich bod yn ei roi eto.\n\nGyda: {orgs}\n"
                   "Yn dod i ben: {day}"},
}


def organisation(org: str, language: str) -> str:
    kind, _sep, code = org.partition(":")
    return f"{ORGANISATION_KINDS.get(kind, {}).get(language, kind)} ({code})"


def _listed(values, names: dict | None, language: str) -> str:
    return ", ".join(names[value][language] if names and value in names else organisation(value, language)
                     for value in values)


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


def consent_requested(language: str, name: str, recipients, categories) -> Notice:
    words = _CONSENT_REQUESTED[language]
    return Notice(words["subject"].format(name=name), words["body"].format(
        name=name, orgs=_listed(recipients, None, language), categories=_listed(categories, CATEGORIES, language)))


def transition_sent(language: str, name: str, school: str) -> Notice:
    words = _TRANSITION_SENT[language]
    return Notice(words["subject"].format(name=name),
                  words["body"].format(name=name, school=organisation(school, language)) + _FAMILY_PAGES[language])


def consent_ending(language: str, name: str, recipients, ends_on) -> Notice:
    words = _CONSENT_ENDING[language]
    day = format_date(ends_on, "full", locale=_LOCALES[language])
    return Notice(words["subject"].format(name=name), words["body"].format(
        name=name, orgs=_listed(recipients, None, language), day=day) + _FAMILY_PAGES[language])
