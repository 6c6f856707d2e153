"""Unit of work: one transaction for a state change, its events and its inbox record.

Handlers use it as a context manager:

    with uow:
        referral = Referral.raise_(...)
        uow.session.add(...)
        uow.emit(ReferralRaised(...), subject=referral.child_ref)
        uow.commit()

When the work was caused by an event, the transaction begins by claiming that event's
dedup key in the inbox (`claim`); on commit the emitted events are written to the outbox —
all in the same transaction. A delivery of an event already handled finds its key taken
and raises `AlreadyProcessed` on entry; one racing the first delivery waits on the key
until the first commits (then it is refused) or rolls back (then it takes the key). The
consumer acknowledges a refused delivery without a second effect.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pont_shared.contract.envelope import Envelope, Payload
from pont_shared.contract.errors import Conflict
from pont_shared.messaging.db import MessagingTables, insert_once, insert_rows
from pont_shared.messaging.outbox import OutboxRow, write_outbox


class AlreadyProcessed(Exception):
    """This event was already handled by this consumer: there is nothing more to do."""


class InboxKey(tuple):
    """(consumer, source, event id, event type) of the event being handled."""

    def __new__(cls, consumer: str, envelope: Envelope):
        return super().__new__(cls, (consumer, envelope.source, envelope.id, envelope.type))


def claim(db: Session | Connection, tables: MessagingTables, key: InboxKey) -> bool:
    """Record the event as handled by this transaction; False if another already has.

    One statement, `INSERT … ON CONFLICT DO NOTHING`, where a look for the key and an insert
    at commit took two (measured: a round trip less for every event a service handles). The
    key is held from here to the commit, so a second delivery handled at the same moment waits
    for this one's outcome rather than repeating its effect.
    """
    consumer, source, event_id, event_type = key
    row = {"consumer": consumer, "source": source, "event_id": event_id, "event_type": event_type,
           "processed_at": datetime.now(UTC)}
    return db.execute(insert_once(db, tables.inbox), row).rowcount == 1


def record_many(session: Session, tables: MessagingTables, keys: list[InboxKey]) -> None:
    now = datetime.now(UTC)
    insert_rows(session.connection(), tables.inbox, [
        {"consumer": c, "source": s, "event_id": i, "event_type": t, "processed_at": now} for c, s, i, t in keys])


class UnitOfWork:
    """A database transaction that also carries the events it causes."""

    def __init__(self, session_factory: Callable[[], Session], tables: MessagingTables, *,
                 source: str, inbox_key: InboxKey | None = None, correlation_id: str | None = None,
                 causation_id: str | None = None, on_commit: Callable[[list[OutboxRow]], None] | None = None,
                 consumer: str | None = None):
        self._session_factory = session_factory
        self.tables = tables
        self.source = source
        self.inbox_key = inbox_key
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self._on_commit = on_commit
        self._pending: list[tuple[Envelope, str, str]] = []
        self._consumer = consumer
        self._batch_keys: list[InboxKey] = []
        self.session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        self.session = self._session_factory()
        self._pending = []
        self._batch_keys = []
        self._claim()
        return self

    def _claim(self) -> None:
        if self.inbox_key is not None and not claim(self.session, self.tables, self.inbox_key):
            self.session.rollback()
            self.session.close()
            raise AlreadyProcessed(self.inbox_key[2])

    def __exit__(self, *exc) -> None:
        self.session.rollback()
        self.session.close()
        self._pending = []

    def fresh(self, envelopes: list[Envelope]) -> list[Envelope]:
        """For a batch consumer: the events not handled before; they are recorded on commit."""
        inbox = self.tables.inbox
        # every column of the inbox's key, so the lookup stays an index probe however large it grows
        done = set(self.session.execute(
            select(inbox.c.source, inbox.c.event_id).where(
                inbox.c.consumer == self._consumer,
                inbox.c.source.in_({e.source for e in envelopes}),
                inbox.c.event_id.in_([e.id for e in envelopes]))
        ).all())
        fresh, seen = [], set()
        for envelope in envelopes:
            if envelope.dedup_key not in done and envelope.dedup_key not in seen:
                seen.add(envelope.dedup_key)
                fresh.append(envelope)
        self._batch_keys = [InboxKey(self._consumer, envelope) for envelope in fresh]
        return fresh

    def emit(self, payload: Payload, *, subject: str | None = None) -> Envelope:
        """Queue an event to be written to the outbox when this unit of work commits."""
        envelope = Envelope.wrap(
            payload, source=self.source, subject=subject,
            correlationid=self.correlation_id, causationid=self.causation_id,
        )
        self._pending.append((envelope, payload.EXCHANGE, payload.routing_key()))
        return envelope

    def commit(self) -> None:
        self.session.flush()
        written = write_outbox(self.session.connection(), self.tables.outbox, self._pending)
        if self._batch_keys:
            record_many(self.session, self.tables, self._batch_keys)
        self.session.commit()
        self._pending = []
        if written and self._on_commit is not None:
            self._on_commit(written)

    def replay(self, scope: str, key: str | None, request: dict):
        """The response first given for this Idempotency-Key, or None if the key is new.

        `scope` separates callers (e.g. "POST /consents:school:6612001"); reusing a key with
        a different body is a conflict, not a replay.
        """
        if not key:
            return None
        row = self.session.execute(_response_kept(self.tables.idempotency), {"b_scope": scope, "b_key": key}).first()
        if row is None:
            return None
        if row.request_hash != _hash(request):
            raise Conflict("this Idempotency-Key was used with a different request")
        return json.loads(row.response)

    def remember(self, scope: str, key: str | None, request: dict, response) -> None:
        """Store the response for this Idempotency-Key, committed with the effect (a key already
        taken raises `IntegrityError`)."""
        if key:
            self.session.execute(insert(self.tables.idempotency), _kept(scope, key, request, response))

    def remember_once(self, scope: str, key: str | None, request: dict, response) -> bool:
        """`remember`, unless the key is taken (by a request this transaction did not look up first):
        then nothing is stored and False is returned."""
        if not key:
            return True
        statement = insert_once(self.session, self.tables.idempotency)
        return self.session.execute(statement, _kept(scope, key, request, response)).rowcount == 1

    def rollback(self) -> None:
        """Undo the transaction so far; work caused by an event claims the event again."""
        self.session.rollback()
        self._pending = []
        self._claim()



@functools.cache
def _response_kept(idempotency: Table):
    """The request's hash and the response kept for a key: built once per service's table."""
    return select(idempotency.c.request_hash, idempotency.c.response).where(
        idempotency.c.scope == bindparam("b_scope"), idempotency.c.key == bindparam("b_key"))


def _kept(scope: str, key: str, request: dict, response) -> dict:
    """The idempotency row that keeps `response` for `key`."""
    return {"scope": scope, "key": key, "request_hash": _hash(request),
            "response": json.dumps(response, default=str), "created_at": datetime.now(UTC)}


def _hash(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
