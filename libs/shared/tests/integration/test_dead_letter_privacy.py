"""A handler failing on a pydantic error: its dead letter names the fields and error types, never the input."""
from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from pydantic import BaseModel, StringConstraints

from pont_shared.messaging.consumer import handles
from pont_shared.messaging.dependencies import UnitOfWorkProvider
from pont_shared.operations.dead_letters import list_dead_letters
from pont_shared.operations.ops import OpsEndpoints
from pont_shared.testing import fresh_database, wait_until

from .probe import Ping, metadata, tables
from .test_reliable_events import Producer

pytestmark = pytest.mark.integration


class ChildRecord(BaseModel):
    given_name: Annotated[str, StringConstraints(max_length=5)]
    year_group: int


class StrictConsumer(OpsEndpoints):
    """Builds a record from each ping's run and fails validating it (the run is the "personal" value)."""

    name = "strict_consumer"
    uow = UnitOfWorkProvider(metadata, tables)

    @handles(Ping)
    def on_ping(self, event):
        ping = event.payload(Ping)
        ChildRecord.model_validate({"given_name": f"Gwenllian-{ping.run}", "year_group": f"year-{ping.run}"})


def test_a_pydantic_failure_dead_letters_with_fields_and_types_but_no_input_value(
        start_service, make_settings, postgres_url, service_name, broker_url):
    start_service(StrictConsumer, make_settings(service_name, postgres_url), name=service_name)
    run = uuid.uuid4().hex[:12]
    with fresh_database("pont_producer") as url:
        producer = Producer(url, broker_url).start()
        try:
            producer.emit(Ping(run=run, n=1))
            letters = wait_until(lambda: list_dead_letters(broker_url, service_name), timeout=15)
        finally:
            producer.stop()

    error = letters[0]["error"]
    assert error.startswith("ValidationError: ")
    assert "given_name: string_too_long" in error and "year_group: int_parsing" in error
    assert run not in error and "Gwenllian" not in error
