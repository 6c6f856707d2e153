"""RPC requests and replies between Pont services, as typed contracts: one pydantic model per message.

nameko carries JSON, so on the wire a request or a reply is still a dict; these models are
the one definition of what that dict holds, imported by both sides:

- the caller builds the request from its model and sends `request.wire()`, and reads the
  answer with `Reply.read(answer)`;
- the service parses what arrived with `Request.parse(data)` — a bad request is refused with
  `Invalid` naming each bad field (never echoing its value), which the gateway answers 422 —
  and answers with `reply.wire()`.

Requests forbid unknown fields (a misspelt field is named, not ignored); replies ignore them,
so a service may add a field to a reply before its callers read it. A new required request
field is a breaking change: give it a default, or update the service before its callers.

The caller a service works for travels in the request's `caller`: the gateway's signed
assertion (a string), which `pont_shared.messaging.rpc.Rpc` replaces with its verified claims
before the method runs, or claims a trusted service vouches for (`ActsForCaller`).

One module per service: `consent`, `referrals`; field types shared by them in `types`.
"""
from __future__ import annotations

from typing import Annotated, Self

from nameko.exceptions import RemoteError
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from pont_shared.contract.caller import CallerClaims, CallerRefused
from pont_shared.contract.errors import Invalid

# the gateway's signed caller assertion (a compact JWS), as a request carries it to the service
SignedAssertion = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


def field_errors(exc: ValidationError, prefix: str = "") -> list[dict]:
    """pydantic's errors as [{field, message}] with dotted field paths; never the input values."""
    return [{"field": prefix + ".".join(str(part) for part in err["loc"]) if err["loc"]
             else prefix.rstrip(".") or "body", "message": err["msg"]}
            for err in exc.errors(include_input=False, include_url=False)]


class Request(BaseModel):
    """A request one service sends another: built by the caller, parsed by the service."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=True)

    @classmethod
    def parse(cls, data, field_prefix: str = "") -> Self:
        """`data` (what arrived) as this request, or `Invalid` listing each bad field."""
        try:
            return cls.model_validate(data if data is not None else {})
        except ValidationError as exc:
            raise Invalid("the request has invalid fields", field_errors(exc, field_prefix)) from None

    @classmethod
    def parse_many(cls, data, limit: int, field: str = "requests") -> list[Self]:
        """A batch: a list of at most `limit` requests, each parsed (`requests.3.purpose` names a bad field)."""
        if not isinstance(data, list) or len(data) > limit:
            raise Invalid(f"a batch is a list of at most {limit} requests",
                          [{"field": field, "message": f"a list of at most {limit}"}])
        return [cls.parse(item, f"{field}.{index}.") for index, item in enumerate(data)]

    def wire(self) -> dict:
        """The request as sent: a JSON-compatible dict."""
        return self.model_dump(mode="json")


class ActsForCaller(Request):
    """A request made for someone: `caller` is the gateway's assertion or claims a service vouches for."""

    caller: CallerClaims | SignedAssertion

    @property
    def claims(self) -> CallerClaims:
        """The caller's verified claims; a request whose assertion no entrypoint verified is refused."""
        if not isinstance(self.caller, CallerClaims):
            raise CallerRefused("the caller assertion was not verified")
        return self.caller


class ReplyUnreadable(RemoteError):
    """A service answered with a reply that is not its contract's: the service failed, not the client."""


class Reply(BaseModel):
    """A service's answer: built by the service, read by the caller."""

    model_config = ConfigDict(extra="ignore", frozen=True, use_enum_values=True)

    @classmethod
    def read(cls, data) -> Self:
        """The answer as this reply, or `ReplyUnreadable` (naming the fields, never their values)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(sorted({error["field"] for error in field_errors(exc)}))
            raise ReplyUnreadable(cls.__name__, f"the reply does not match its contract: {fields}") from None

    @classmethod
    def read_many(cls, data) -> list[Self]:
        if not isinstance(data, list):
            raise ReplyUnreadable(cls.__name__, "the reply is not a list")
        return [cls.read(item) for item in data]

    def wire(self) -> dict:
        """The reply as sent: a JSON-compatible dict."""
        return self.model_dump(mode="json")
