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
