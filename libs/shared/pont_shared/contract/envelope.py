"""The CloudEvents 1.0 envelope every Pont event travels in (structured JSON mode)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

EVENTS_EXCHANGE = "pont.events"
# a topic exchange keyed by the recipient organisation: RabbitMQ's topic permissions then
# confine each agency's bindings to its own organisation's key
DISCLOSURES_EXCHANGE = "pont.disclosed"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every event payload: the contract of one event `type`.

    Consumers ignore unknown fields, so adding a field is not a breaking change; a
    breaking change is a new class with a new `TYPE` version.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str]
    EXCHANGE: ClassVar[str] = EVENTS_EXCHANGE

    def routing_key(self) -> str:
        return self.TYPE


class Envelope(BaseModel):
    """CloudEvents attributes plus Pont's correlation/causation extensions."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    specversion: str = "1.0"
    time: datetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: str = "application/json"
    correlationid: str | None = None
    causationid: str | None = None
    data: dict[str, Any]

    @property
    def dedup_key(self) -> tuple[str, str]:
        return self.source, self.id

    @classmethod
    def wrap(
        cls,
        payload: Payload,
        *,
        source: str,
        subject: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
    ) -> Envelope:
        event_id = str(uuid.uuid4())
        return cls(
            id=event_id,
            source=source,
            type=payload.TYPE,
            subject=subject,
            correlationid=correlationid or event_id,
            causationid=causationid,
            data=payload.model_dump(mode="json"),
        )

    def payload(self, model: type[Payload]) -> Payload:
        """Validate `data` against the payload model for this event's type."""
        return model.model_validate(self.data)
