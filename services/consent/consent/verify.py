"""`pont-verify-ledger`: recompute the disclosure ledger's hash chain and report the first altered entry.

Exit status 0 when the chain is intact, 1 when an entry was altered, removed or re-linked.
"""
from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from pont_shared.config import Settings
from pont_shared.messaging.db import make_engine

from .domain import first_broken_link
from .orm import ledger, ledger_entry_from


def verify(database_url: str) -> tuple[int, tuple | None]:
    """(entries checked, (first broken entry, why) or None)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as db:
            rows = db.execute(select(ledger).order_by(ledger.c.seq)).all()
    finally:
        engine.dispose()
    entries = [ledger_entry_from(row) for row in rows]
    return len(entries), first_broken_link(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the consent service's disclosure ledger hash chain.")
    parser.add_argument("--database-url", help="the consent database (default: PONT_CONSENT_DATABASE_URL)")
    args = parser.parse_args(argv)
    url = args.database_url or Settings.from_env("consent").database_url
    checked, broken = verify(url)
    if broken is None:
        print(f"ledger intact: {checked} entries verified")
        return 0
    entry, why = broken
    print(f"ledger ALTERED at entry seq={entry.seq} id={entry.id}: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
