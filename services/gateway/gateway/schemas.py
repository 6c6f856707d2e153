"""Request field types and models shared by every route area, defined once in the RPC contract."""
from __future__ import annotations

from pont_shared.contract.rpc.types import Child, Name, OrgId, Text, org_id

__all__ = ["Child", "Name", "OrgId", "Text", "org_id"]
