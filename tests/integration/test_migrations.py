"""Every service's migrations build exactly the schema its code defines, on PostgreSQL and on
SQLite (the embedded default), so that neither the shared messaging tables' DDL
(`pont_shared.operations.migrations`) nor a service's own drifts from its table definitions."""
from __future__ import annotations

import importlib
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from pont_shared.messaging.db import make_engine
from pont_shared.messaging.dependencies import SchemaBehind
from pont_shared.operations.migrations import breaking_steps, upgrade
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


def test_replicas_starting_together_migrate_once_and_none_fails():
    """Four processes migrate one empty PostgreSQL database at the same moment (as replicas of a
    service starting together do): the advisory lock makes them take turns."""
    import subprocess
    import sys

    script = ("import sys; from pont_shared.messaging.db import make_engine; "
              "from pont_shared.operations.migrations import upgrade; "
              "sys.stdin.readline(); upgrade(make_engine(sys.argv[1]), sys.argv[2])")
    with fresh_database("pont_migrate_together") as url:
        replicas = [subprocess.Popen([sys.executable, "-c", script, url, str(SERVICES / "consent/consent/migrations")],
                                     stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        for replica in replicas:  # all started and imported; let them go at once
            replica.stdin.write("go\n")
            replica.stdin.flush()
        failures = [replica.communicate(timeout=120)[1] for replica in replicas if replica.wait(timeout=120) != 0]
        engine = make_engine(url)
        try:
            drift = schema_drift(engine, importlib.import_module("consent.orm").metadata)
        finally:
            engine.dispose()
    assert failures == [] and drift == []


def test_pont_migrate_brings_a_database_to_head_and_a_service_told_not_to_migrate_leaves_it_alone(
        start_service, make_settings, service_name):
    import os
    import subprocess
    import sys

    from sqlalchemy import inspect

    from consent.service import ConsentService

    with fresh_database("pont_migrate_job") as url, fresh_database("pont_no_migrate") as untouched:
        env = {**os.environ, "PONT_ENV": "development", "PONT_CONSENT_DATABASE_URL": url}
        done = subprocess.run([str(Path(sys.executable).parent / "pont-migrate"), "consent.service:ConsentService"],
                              env=env, capture_output=True, text=True, timeout=120)
        start_service(ConsentService, make_settings(service_name, url, migrate_at_start=False), name=service_name)
        with pytest.raises(SchemaBehind, match="no schema yet; run `pont-migrate` first"):
            start_service(ConsentService, make_settings(service_name + "_x", untouched, migrate_at_start=False),
                          name=service_name + "_x")
        migrated, left_alone = make_engine(url), make_engine(untouched)
        try:
            drift = schema_drift(migrated, importlib.import_module("consent.orm").metadata)
            tables = inspect(left_alone).get_table_names()
        finally:
            migrated.dispose()
            left_alone.dispose()
    assert done.returncode == 0 and done.stdout.strip() == "consent: at head", done.stderr
    assert drift == [] and tables == []


def test_a_service_told_not_to_migrate_refuses_a_schema_behind_its_code_and_runs_on_one_ahead_of_it():
    """Behind: a migration of this version not yet run, and the service would meet tables it does not
    expect. Ahead: a newer version's migration already run, as while a rolling update replaces it."""
    from consent.service import ConsentService

    migrations = ConsentService.uow.prepare
    first = ScriptDirectory(str(migrations.script_location)).get_base()
    with fresh_database("pont_schema_behind") as url:
        engine = make_engine(url)
        try:
            assert migrations.behind(engine) == "the database has no schema yet"
            upgrade(engine, migrations.script_location, first)
            assert migrations.behind(engine).startswith(f"the schema is at {first}, not at head ")
            migrations(engine)
            assert migrations.behind(engine) is None
            with engine.begin() as db:
                db.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
            assert migrations.behind(engine) is None
        finally:
            engine.dispose()


@pytest.mark.parametrize("package", MIGRATED, ids=lambda path: path.name)
def test_every_revision_keeps_what_the_version_before_it_uses(package):
    """Expand/contract: no revision takes away what the running version reads or writes."""
    with fresh_database(f"pont_expand_{package.name}") as url:
        engine = make_engine(url)
        try:
            assert breaking_steps(engine, package / "migrations") == []
        finally:
            engine.dispose()


NARROWING = '''
"""drop a column the version before this one still writes"""
import sqlalchemy as sa
from alembic import op

revision = "c0ffee000001"
down_revision = {head!r}
{contract}

def upgrade():
    op.drop_column("referrals", "details")
    op.add_column("referrals", sa.Column("region", sa.String(20), nullable=False))
    op.add_column("referrals", sa.Column("team", sa.String(20), server_default="duty", nullable=False))
    op.create_index("ix_referrals_team", "referrals", ["team"])


def downgrade():
    pass
'''


@pytest.mark.parametrize("contract", ["", 'contract = "nothing running reads details any more"'])
def test_a_revision_that_narrows_the_schema_is_found_unless_it_says_it_is_a_contract(tmp_path, contract):
    migrations = tmp_path / "migrations"
    shutil.copytree(SERVICES / "referrals/referrals/migrations", migrations,
                    ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory(str(migrations)).get_current_head()
    (migrations / "versions" / "c0ffee000001_narrow.py").write_text(NARROWING.format(head=head, contract=contract))
    with fresh_database("pont_expand_narrowing") as url:
        engine = make_engine(url)
        try:
            found = [(revision, what) for revision, what, _statement in breaking_steps(engine, migrations)]
        finally:
            engine.dispose()
    assert found == ([] if contract else [("c0ffee000001", "drops a column"),
                                          ("c0ffee000001", "adds a required column with no default")])
