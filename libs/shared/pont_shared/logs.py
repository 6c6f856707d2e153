"""structlog JSON logs that never carry personal data.

`redact` runs on every event dict, structlog's and the standard library's (nameko,
kombu): keys that name personal data lose their values, and strings are scrubbed of
anything shaped like a UPN, an NHS number or a date of birth. Free text about a child is
only ever under a personal key, so it is dropped with the key.
"""
from __future__ import annotations

import logging
import re
import sys

import structlog

REDACTED = "[redacted]"
PERSONAL_KEYS = frozenset({
    "name", "given_name", "family_name", "first_name", "last_name", "forename", "surname",
    "preferred_name", "date_of_birth", "dob", "birth_date", "upn", "nhs_number", "address",
    "postcode", "phone", "email", "details", "notes", "reason", "justification", "outcome",
    "child", "given_by", "content", "wellbeing", "free_text", "body", "data", "payload",
})
_PATTERNS = (
    re.compile(r"\b[A-Z]\d{11}[0-9A-Z]\b"),              # UPN (and its temporary form)
    re.compile(r"\b\d{3}\s?\d{3}\s?\d{4}\b"),             # NHS number
    re.compile(r"\b(19|20)\d{2}-\d{2}-\d{2}\b(?!T)"),     # a date that is not a timestamp
)


def scrub(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _redact_value(key: str, value):
    if key.lower() in PERSONAL_KEYS:
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value("", v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def redact(_logger, _method, event_dict: dict) -> dict:
    """structlog processor: drop personal data from an event dict."""
    return {key: _redact_value(key, value) if key != "timestamp" else value
            for key, value in event_dict.items()}


def _exception_line(line: str) -> str:
    """`SomeError: message` → `SomeError: [redacted]`: a message may quote a child's data."""
    if line and not line[0].isspace() and ": " in line and not line.startswith("Traceback"):
        return line.split(": ", 1)[0] + ": " + REDACTED
    return line


def _scrub_exception(_logger, _method, event_dict: dict) -> dict:
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = "\n".join(_exception_line(line) for line in event_dict["exception"].splitlines())
    return event_dict


class _NoArgs(logging.Filter):
    """Library log calls interpolate values (requests, payloads, exceptions) we cannot vet:
    keep their message template and drop the arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.msg, str):
            record.msg = record.msg.replace("%s", REDACTED).replace("%r", REDACTED).replace("%d", REDACTED)
            record.args = ()
        return True


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """JSON lines on `stream` (stderr by default) for structlog and stdlib loggers alike."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            lambda _l, _m, ed: {**ed, "service": ed.get("service", service)},
            structlog.processors.format_exc_info,
            redact,
            _scrub_exception,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_NoArgs())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
