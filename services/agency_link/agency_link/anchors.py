"""Anchors of the consent ledger: the chain heads consent announced, kept in this agency's database."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from pont_shared.contract.events import LedgerAnchored
from pont_shared.contract.rpc.agency_link import AnchorView
from pont_shared.messaging.uow import UnitOfWork

from .orm import ledger_anchors


def keep(uow: UnitOfWork, ledger: str, event: LedgerAnchored, at: datetime) -> bool:
    """Remember a head of `ledger` (the announcing service) once; announced again, the hash first seen stays."""
    with uow:
        seen = uow.session.execute(select(ledger_anchors.c.seq).where(
            ledger_anchors.c.ledger == ledger, ledger_anchors.c.seq == event.seq)).first()
        if seen is None:
            uow.session.execute(ledger_anchors.insert().values(ledger=ledger, seq=event.seq, hash=event.hash,
                                                               received_at=at))
        uow.commit()
    return seen is None


def latest(uow: UnitOfWork, ledger: str) -> AnchorView | None:
    """The highest head of `ledger` seen, or None before the first announcement."""
    with uow:
        row = uow.session.execute(select(ledger_anchors).where(ledger_anchors.c.ledger == ledger)
                                  .order_by(ledger_anchors.c.seq.desc()).limit(1)).first()
    return None if row is None else AnchorView(seq=row.seq, hash=row.hash)
