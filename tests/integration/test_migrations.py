"""Every service's migrations build exactly the schema its code defines, on PostgreSQL."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from pont_shared.messaging.db import make_engine
from pont_shared.operations.migrations import upgrade
from pont_shared.testing import fresh_database, schema_drift

pytestmark = pytest.mark.integration
SERVICES = Path(__file__).resolve().parents[2] / "services"
MIGRATED = sorted(path.parent for path in SERVICES.glob("*/*/migrations") if (path / "env.py").exists())


@pytest.mark.parametrize("package", MIGRATED, ids=lambda path: path.name)
def test_migrating_an_empty_database_to_head_matches_the_table_definitions(package):
    metadata = importlib.import_module(f"{package.name}.orm").metadata
    with fresh_database(f"pont_migrate_{package.name}") as url:
        engine = make_engine(url)
        try:
            upgrade(engine, package / "migrations")
            upgrade(engine, package / "migrations")  # a second run is a no-op

            assert schema_drift(engine, metadata) == []
        finally:
            engine.dispose()
