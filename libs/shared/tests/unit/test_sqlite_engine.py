"""`make_engine` on SQLite, the embedded default store: waiting for the file is a green wait.

A real SQLite file under eventlet (the test run is monkey patched, as every service is); no
broker. A "ticker" green thread counts while another waits for the database: if the wait
blocked the process, as pysqlite's own busy wait does, the ticker would stand still.
"""
from __future__ import annotations

import sqlite3

import eventlet
from eventlet.event import Event
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update

from pont_shared.messaging.db import make_engine
from pont_shared.testing import wait_until

metadata = MetaData()
counters = Table("counters", metadata, Column("name", String(20), primary_key=True), Column("value", Integer))


class Ticker:
    """A green thread that counts as long as the process lets it run."""

    def __init__(self):
        self.ticks = 0
        self._thread = eventlet.spawn(self._run)

    def _run(self):
        while True:
            self.ticks += 1
            eventlet.sleep(0.001)

    def moves(self) -> bool:
        seen = self.ticks
        return wait_until(lambda: self.ticks >= seen + 20, timeout=5, interval=0.001)

    def stop(self):
        self._thread.kill()


def engine_on(path):
    engine = make_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as db:
        db.execute(insert(counters).values(name="c", value=0))
    return engine


def value(engine) -> int:
    with engine.connect() as db:
        return db.execute(select(counters.c.value)).scalar_one()


class TestWaitingForTheDatabase:
    def test_a_writer_waiting_for_another_green_threads_transaction_lets_every_other_thread_run(self, tmp_path):
        engine, ticker, release = engine_on(tmp_path / "a.db"), Ticker(), Event()

        def holder():
            with engine.begin() as db:
                db.execute(update(counters).values(value=counters.c.value + 1))
                release.wait()

        def writer():
            with engine.begin() as db:
                db.execute(update(counters).values(value=counters.c.value + 10))

        held = eventlet.spawn(holder)
        wait_until(lambda: engine.pool.checkedout() == 1, timeout=5)
        waiting = eventlet.spawn(writer)

        assert ticker.moves()   # the process runs on while the writer waits
        assert not waiting.dead
        release.send()
        held.wait()
        waiting.wait()
        assert value(engine) == 11
        ticker.stop()
        engine.dispose()

    def test_a_file_another_process_holds_is_waited_for_without_blocking_the_process(self, tmp_path):
        engine = engine_on(tmp_path / "b.db")
        other = sqlite3.connect(tmp_path / "b.db", isolation_level=None)   # as another process would hold it
        other.execute("BEGIN IMMEDIATE")
        ticker = Ticker()

        def writer():
            with engine.begin() as db:
                db.execute(update(counters).values(value=counters.c.value + 1))

        waiting = eventlet.spawn(writer)

        assert ticker.moves()
        assert not waiting.dead
        other.execute("COMMIT")
        waiting.wait()
        assert value(engine) == 1
        other.close()
        ticker.stop()
        engine.dispose()


class TestReadThenWrite:
    def test_transactions_that_read_then_write_from_two_engines_neither_fail_nor_lose_an_update(self, tmp_path):
        first = engine_on(tmp_path / "c.db")
        second = make_engine(f"sqlite:///{tmp_path / 'c.db'}")   # another process on the same file

        def increment(engine):
            with engine.begin() as db:
                seen = db.execute(select(counters.c.value)).scalar_one()
                eventlet.sleep(0)   # let the other engine's transactions in, if they could come
                db.execute(update(counters).values(value=seen + 1))

        threads = [eventlet.spawn(increment, engine) for _ in range(20) for engine in (first, second)]

        for thread in threads:
            thread.wait()
        assert value(first) == 40
        first.dispose()
        second.dispose()
