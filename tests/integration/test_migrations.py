"""Every service's migrations build exactly the schema its code defines, on PostgreSQL and on
SQLite (the embedded default), so that neither the shared messaging tables' DDL
(`pont_shared.operations.migrations`) nor a service's own drifts from its table definitions."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path

import pytest

from pont_shared.messaging.db import make_engine
from pont_shared.operations.migrations import upgrade
from pont_shared.testing import fresh_database, schema_drift

pytestmark = pytest.mark.integration
SERVICES = Path(__file__).resolve().parents[2] / "services"
MIGRATED = sorted(path.parent for path in SERVICES.glob("*/*/migrations") if (path / "env.py").exists())


@contextmanager
def empty_database(dialect: str, name: str, tmp_path: Path):
    if dialect == "postgresql":
        with fresh_database(f"pont_migrate_{name}") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / name}.db"


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("package", MIGRATED, ids=lambda path: path.name)
def test_migrating_an_empty_database_to_head_matches_the_table_definitions(package, dialect, tmp_path):
    metadata = importlib.import_module(f"{package.name}.orm").metadata
    with empty_database(dialect, package.name, tmp_path) as url:
        engine = make_engine(url)
        try:
            assert engine.dialect.name == dialect
            upgrade(engine, package / "migrations")
            upgrade(engine, package / "migrations")  # a second run is a no-op

            assert schema_drift(engine, metadata) == []
        finally:
            engine.dispose()
