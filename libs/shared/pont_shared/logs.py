"""structlog JSON logs that never carry personal data.

`redact` runs on every event dict, structlog's and the standard library's (nameko,
kombu): keys that name personal data lose their values, and strings are scrubbed of
anything shaped like a UPN, an NHS number or a date of birth, and of a URL's query. Free text about a child is
only ever under a personal key, so it is dropped with the key.

An exception is logged as its traceback (files, lines, functions: no values) and, for
each exception in its chain, its type and a *safe message* (`describe`): the text of
errors that come from infrastructure ("database is locked", "Connection refused",
"CONNECTION_FORCED"), the fields and error types of a validation error without the
values it quotes, and nothing of any other message, which may quote a child's data.
"""
from __future__ import annotations

import logging
import re
import sys
import traceback

import amqp.exceptions
import kombu.exceptions
import pydantic
import sqlalchemy.exc
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
    # a URL's query (the web server's access line: a search may carry a pupil's name)
    re.compile(r"(?<=\?)[^\s\"#]+"),
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


_CONNECTION_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                      sqlalchemy.exc.DisconnectionError)


def safe_message(exc: BaseException) -> str:
    """What an operator may read of `exc` without reading a child's data (see the module doc)."""
    if isinstance(exc, _CONNECTION_ERRORS) and getattr(exc, "orig", None) is not None:
        return scrub(str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__)
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and getattr(exc, "orig", None) is not None:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        return type(exc.orig).__name__ + (f" (constraint {constraint})" if constraint else "")
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # the pool's: all connections in use
        return "no database connection free in time"
    if isinstance(exc, (OSError, amqp.exceptions.AMQPError, kombu.exceptions.OperationalError, TimeoutError)):
        return scrub(str(exc)) or type(exc).__name__
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(f"{'.'.join(map(str, error['loc'])) or '(root)'}: {error['type']}"
                         for error in exc.errors(include_url=False, include_input=False))
    return REDACTED


def describe(exc: BaseException) -> str:
    """`Type: safe message`, for a log line or a dead letter's header."""
    return f"{type(exc).__name__}: {safe_message(exc)}"


def _format_exception(_logger, _method, event_dict: dict) -> dict:
    """structlog processor: `exc_info` → `exception`, the traceback with only safe messages."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not exc_info or exc_info[1] is None:
        return event_dict
    chain, exc = [], exc_info[1]
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    parts = []
    for exc in reversed(chain):
        parts += ["Traceback (most recent call last):\n", *traceback.format_tb(exc.__traceback__),
                  describe(exc) + "\n", "\nwhich caused:\n"]
    event_dict["exception"] = "".join(parts[:-1]).rstrip()
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
            _format_exception,
            redact,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_NoArgs())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
