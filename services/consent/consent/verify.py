"""`pont-verify-ledger`: recompute the disclosure ledger's keyed hash chain and report the first altered entry.

Exit status 0 when the chain is intact, 1 when an entry was altered, removed or re-linked. Run
against the database alone it has no anchors, so it cannot see a dropped tail: the consent
service's `verify_ledger` (GET /api/v1/ledger/verify, and its timer) also compares the agency
links' anchors.
"""
from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from pont_shared.config import Settings
from pont_shared.messaging.db import make_engine

from .domain import LedgerKeys, verify_chain
from .orm import ledger, ledger_entry_from


def verify(database_url: str, keys: LedgerKeys) -> tuple[int, dict | None]:
    """(entries checked, {seq, reason} of the first broken entry or None)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as db:
            rows = db.execute(select(ledger).order_by(ledger.c.seq)).all()
    finally:
        engine.dispose()
    result = verify_chain([ledger_entry_from(row) for row in rows], keys)
    return result.entries, result.first_broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify the consent service's disclosure ledger hash chain.")
    parser.add_argument("--database-url", help="the consent database (default: PONT_CONSENT_DATABASE_URL)")
    args = parser.parse_args(argv)
    settings = Settings.from_env("consent")
    keys = LedgerKeys.from_secrets(settings.ledger_key, settings.ledger_previous_keys)
    checked, broken = verify(args.database_url or settings.database_url, keys)
    if broken is None:
        print(f"ledger intact: {checked} entries verified")
        return 0
    print(f"ledger ALTERED at entry seq={broken['seq']}: {broken['reason']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
