"""The gateway service: the public HTTP API, one mixin of routes per area."""
from __future__ import annotations

from pont_shared.operations.ops import OpsEndpoints

from . import openapi
from .api import api
from .routes.bookings import BookingRoutes
from .routes.family import FamilyRoutes
from .routes.referrals import ReferralRoutes
from .routes.sharing import SharingRoutes
from .routes.transitions import TransitionRoutes


class GatewayService(BookingRoutes, FamilyRoutes, ReferralRoutes, SharingRoutes, TransitionRoutes, OpsEndpoints):
    """Authentication, authorisation, validation and the public contract; owns no data."""

    name = "gateway"

    @api("GET", "/openapi.json", public=True, summary="This API as an OpenAPI 3.1 document")
    def openapi_document(self):
        return openapi.document(type(self))
