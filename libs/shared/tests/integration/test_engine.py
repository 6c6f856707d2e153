"""The engine services use: a pooled connection the server has closed is replaced unseen."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from pont_shared.messaging.db import make_engine
from pont_shared.testing import fresh_database, wait_until

pytestmark = pytest.mark.integration


def test_a_pooled_connection_the_server_terminated_is_replaced_before_a_transaction_uses_it():
    with fresh_database("pont_engine") as url:
        engine, admin = make_engine(url, pool_size=1), make_engine(url, pool_size=1)
        try:
            with engine.begin() as db:
                pooled = db.execute(text("SELECT pg_backend_pid()")).scalar()
            with admin.begin() as db:   # as a PostgreSQL restart or failover does to every connection
                db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled})

            def gone() -> bool:
                with admin.begin() as db:
                    return db.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pooled}).first() is None

            wait_until(gone, message="the backend did not go")

            with engine.begin() as db:
                replaced = db.execute(text("SELECT pg_backend_pid()")).scalar()
        finally:
            engine.dispose()
            admin.dispose()

    assert replaced != pooled
