"""PostgreSQL least privilege: per service an owner role and a runtime role on its own database.

    python -m pont_shared.operations.roles --admin-url postgresql+psycopg2://postgres@db/postgres \
        consent [--database consent]

Idempotent; run it once per service database when provisioning, and again after an upgrade
whose migrations add an append-only table. With a superuser (`--admin-url`) it:

1. creates `<database>_owner` and `<database>_app` (LOGIN; passwords from
   `PONT_<SERVICE>_DB_OWNER_PASSWORD` / `PONT_<SERVICE>_DB_APP_PASSWORD`, else
   `PONT_DB_OWNER_PASSWORD` / `PONT_DB_APP_PASSWORD`, when set), the
   database owned by the owner if it does not exist, and hands the owner every table,
   sequence and view a superuser created there before (deployments from before roles);
2. lets no other role connect (`REVOKE ALL ... FROM PUBLIC`); the app role may connect and
   use the schema, never create in it;
3. runs the service's migrations as the owner;
4. grants the app role SELECT, INSERT, UPDATE, DELETE on every table (and by default
   privilege on those the owner creates later) — except the append-only tables of
   `APPEND_ONLY` (consent's `disclosure_ledger`, agency_link's `ledger_anchors`: SELECT and INSERT only) and
   `alembic_version` (SELECT only).

The service then runs with `PONT_<SERVICE>_DATABASE_URL` as `<database>_app` and migrates at
start with `PONT_<SERVICE>_MIGRATE_DATABASE_URL` as `<database>_owner`. SQLite needs none of this.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pont_shared.config import safe_name
from pont_shared.operations.migrations import upgrade

APPEND_ONLY: dict[str, tuple[str, ...]] = {"consent": ("disclosure_ledger",), "agency_link": ("ledger_anchors",)}
READ_ONLY = ("alembic_version",)


def package_of(service: str) -> str:
    """The Python package of a service: each agency link instance is `agency_link`."""
    return "agency_link" if service.startswith("agency_link") else service


def role_names(database: str) -> tuple[str, str]:
    return f"{database}_owner", f"{database}_app"


def _ident(name: str) -> str:
    if not name or safe_name(name) != name:
        raise ValueError(f"{name!r}: a role or database name here is letters, digits and _ only")
    return f'"{name}"'


def provision(admin_url: str, service: str, database: str, *, owner_password: str | None = None,
              app_password: str | None = None) -> tuple[str, str]:
    """Set up the roles, ownership, migrations and grants; returns (owner URL, app URL)."""
    owner, app = role_names(database)
    db, o, a = _ident(database), _ident(owner), _ident(app)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for role, password in ((owner, owner_password), (app, app_password)):
                if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is None:
                    conn.execute(text(f"CREATE ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"))
                if password:
                    conn.execute(text(f"ALTER ROLE {_ident(role)} PASSWORD :p"), {"p": password})
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).first() is None:
                conn.execute(text(f"CREATE DATABASE {db} OWNER {o}"))
            conn.execute(text(f"ALTER DATABASE {db} OWNER TO {o}"))
            conn.execute(text(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC"))
            conn.execute(text(f"GRANT CONNECT ON DATABASE {db} TO {a}"))
    finally:
        admin.dispose()

    in_db = make_url(admin_url).set(database=database)
    superuser = create_engine(in_db, isolation_level="AUTOCOMMIT")
    try:
        with superuser.connect() as conn:
            conn.execute(text("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
            conn.execute(text(f"GRANT ALL ON SCHEMA public TO {o}"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {a}"))
            for kind, catalog in (("TABLE", "pg_tables"), ("SEQUENCE", "pg_sequences"), ("VIEW", "pg_views")):
                column = {"pg_tables": "tablename", "pg_sequences": "sequencename", "pg_views": "viewname"}[catalog]
                names = conn.execute(text(f"SELECT {column} FROM {catalog} WHERE schemaname = 'public'")).scalars()
                for name in list(names):
                    conn.execute(text(f'ALTER {kind} public."{name}" OWNER TO {o}'))
        owner_url = in_db.set(username=owner, password=owner_password)
        migrations = Path(importlib.import_module(package_of(service)).__file__).parent / "migrations"
        owner_engine = create_engine(owner_url)
        try:
            upgrade(owner_engine, migrations)
        finally:
            owner_engine.dispose()
        with superuser.connect() as conn:
            conn.execute(text(f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
                              f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {a}"))
            conn.execute(text(f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public "
                              f"GRANT USAGE, SELECT ON SEQUENCES TO {a}"))
            conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {a}"))
            conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {a}"))
            for table in READ_ONLY:
                conn.execute(text(f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public."{table}" FROM {a}'))
            for table in APPEND_ONLY.get(package_of(service), ()):
                conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON public."{table}" FROM {a}'))
    finally:
        superuser.dispose()
    app_url = in_db.set(username=app, password=app_password)
    return (owner_url.render_as_string(hide_password=False), app_url.render_as_string(hide_password=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create a service's owner and runtime PostgreSQL roles and grants.")
    parser.add_argument("service", help="consent, referrals, bookings, transitions or agency_link_<org>")
    parser.add_argument("--admin-url", required=True, help="a superuser's URL, e.g. postgresql+psycopg2://postgres@db/postgres")
    parser.add_argument("--database", help="the service's database (default: the service name)")
    args = parser.parse_args(argv)
    key = safe_name(args.service).upper()
    database = args.database or safe_name(args.service)
    provision(args.admin_url, args.service, database,
              owner_password=os.environ.get(f"PONT_{key}_DB_OWNER_PASSWORD", os.environ.get("PONT_DB_OWNER_PASSWORD")),
              app_password=os.environ.get(f"PONT_{key}_DB_APP_PASSWORD", os.environ.get("PONT_DB_APP_PASSWORD")))
    owner, app = role_names(database)
    print(f"{database}: owner role {owner} (migrations), runtime role {app} (the service)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
