"""`insert_rows` stores exactly what the ordinary INSERT would, on PostgreSQL and SQLite alike."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Boolean, Column, Date, Integer, MetaData, String, Table, Text, select
from sqlalchemy.exc import StatementError

from pont_shared.messaging.db import UtcDateTime, insert_rows, make_engine
from pont_shared.testing import fresh_database

metadata = MetaData()
things = Table(
    "things", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(80), nullable=False),
    Column("note", Text),
    Column("doc", JSON, nullable=False),
    Column("at", UtcDateTime()),
    Column("on", Date),
    Column("flag", Boolean, nullable=False),
)

AWKWARD = 'Ysgol "Gymraeg" \\ back\\slash — ŵ ŷ\n\ttab, {brace}, [bracket], NULL'
ROWS = [
    {"name": AWKWARD, "note": None, "doc": {"sections": {"aln": [1, 2]}, "text": AWKWARD, "none": None},
     "at": datetime(2026, 9, 1, 8, 30, 0, 123456, tzinfo=UTC), "on": date(2026, 9, 1), "flag": True},
    {"name": "second", "note": '{"not": "json, just text"}', "doc": ["a", 1, True],
     "at": datetime(2026, 9, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))), "on": None, "flag": False},
]


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/things.db")
        metadata.create_all(engine)
        yield engine
        engine.dispose()
        return
    with fresh_database("pont_insert_rows") as url:
        engine = make_engine(url)
        metadata.create_all(engine)
        yield engine
        engine.dispose()


def stored(engine) -> list[dict]:
    with engine.connect() as db:
        return [{k: v for k, v in row._mapping.items() if k != "id"}
                for row in db.execute(select(things).order_by(things.c.id))]


def test_rows_come_back_as_given(engine):
    with engine.begin() as db:
        insert_rows(db, things, ROWS)
    got = stored(engine)
    assert got == ROWS
    assert got[1]["at"] == datetime(2026, 9, 1, 8, 30, tzinfo=UTC)   # the same instant, read back in UTC


def test_a_naive_time_is_refused_and_nothing_is_written(engine):
    with pytest.raises((ValueError, StatementError), match="naive datetime"), engine.begin() as db:
        insert_rows(db, things, [ROWS[0], {**ROWS[1], "at": datetime(2026, 9, 1, 9, 30)}])
    assert stored(engine) == []


def test_no_rows_is_no_statement(engine):
    with engine.begin() as db:
        insert_rows(db, things, [])
    assert stored(engine) == []
