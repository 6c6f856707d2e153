import io
import json
import logging

import structlog

from pont_shared.logs import configure_logging


def capture():
    stream = io.StringIO()
    configure_logging("test", "DEBUG", stream=stream)
    return stream


def test_personal_keys_are_dropped_and_upns_dates_nhs_numbers_scrubbed():
    stream = capture()

    structlog.get_logger("pont.test").info(
        "referral.raised", child={"given_name": "Megan", "upn": "A123456789012"}, given_name="Megan",
        note="pupil A123456789012 born 2014-05-03 nhs 943 476 5919", referral_id="r1",
    )

    line = json.loads(stream.getvalue().splitlines()[-1])
    text = stream.getvalue()
    assert line["referral_id"] == "r1" and line["service"] == "test"
    assert "Megan" not in text and "A123456789012" not in text
    assert "2014-05-03" not in text and "943 476 5919" not in text


def test_the_web_servers_access_line_keeps_the_path_but_not_the_query():
    stream = capture()

    logging.getLogger("nameko.web.server").info(
        '127.0.0.1 - - [04/Dec/2026 21:30:00] "GET /pupils?q=osian+evans HTTP/1.1" 200 1234 0.012000')

    text = stream.getvalue()
    assert "osian" not in text and '"GET /pupils?[redacted] HTTP/1.1" 200' in json.loads(text)["event"]


def test_library_log_arguments_and_exception_messages_are_not_written():
    stream = capture()

    name = "Megan" + " Jones"  # built at run time: the traceback quotes source lines, not values
    try:
        raise ValueError(f"bad value for {name}")
    except ValueError:
        logging.getLogger("nameko.containers").exception("error handling worker %s: %s", "ctx", name)

    text = stream.getvalue()
    assert "Megan" not in text
    assert "ValueError" in text  # what failed stays visible


def test_an_infrastructure_error_keeps_its_type_and_message():
    import sqlite3

    import sqlalchemy.exc

    stream = capture()
    name = "Meg" + "an"  # built at run time: the traceback quotes source lines, not values

    try:
        raise sqlalchemy.exc.OperationalError("INSERT INTO referral VALUES (?)", (name,),
                                              sqlite3.OperationalError("database is locked"))
    except sqlalchemy.exc.OperationalError:
        structlog.get_logger("pont.test").exception("event.failed")

    text = stream.getvalue()
    assert "OperationalError: database is locked" in text
    assert "Megan" not in text


def test_a_validation_error_names_the_field_not_the_value():
    import pydantic

    from pont_shared.logs import describe

    class Child(pydantic.BaseModel):
        given_name: str
        year: int

    try:
        Child(given_name="Megan", year="Megan Jones")
    except pydantic.ValidationError as exc:
        described = describe(exc)

    assert described == "ValidationError: year: int_parsing"


def test_a_chained_exception_shows_each_cause_safely():
    stream = capture()
    name = "Meg" + "an"

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise RuntimeError(f"could not file {name}'s referral") from exc
    except RuntimeError:
        logging.getLogger("nameko.containers").exception("error")

    text = json.loads(stream.getvalue().splitlines()[-1])["exception"]
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in text
    assert "RuntimeError: [redacted]" in text and "Megan" not in text
