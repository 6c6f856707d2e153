"""Request field types and models shared by every route area, defined once in the RPC contract."""
from __future__ import annotations

from pont_shared.auth import ORG_PATTERN
from pont_shared.contract.rpc.types import Child, Name, OrgId, Text

__all__ = ["Child", "Name", "OrgId", "Text", "org_id"]


def org_id(value: str) -> str:
    """Validate an organisation id `<kind>:<code>`."""
    if not ORG_PATTERN.match(value):
        raise ValueError("an organisation id is <kind>:<code>, kind one of school, health, social_care, "
                         "youth_work, local_authority")
    return value
