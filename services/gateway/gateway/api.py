"""`@api(...)`: a nameko HTTP entrypoint that authenticates, authorises and validates.

The decorated method receives `(caller, body)` — plus `query`, path values and
`idempotency_key` as the route declares — and returns `(status, json-able)` or just
the json-able result (the route's default status). Every error becomes RFC 9457
problem details through the one table in `problems.py`; the route is recorded for the
OpenAPI document.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import Enum
from functools import partial

import structlog
from eventlet.event import Event
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.web.handlers import HttpRequestHandler
from pydantic import BaseModel, ValidationError
from werkzeug.wrappers import Response

from pont_shared.auth import STAFF_ROLES, Caller, verify
from pont_shared.contract.caller import CallerSigner
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound
from pont_shared.contract.rpc import Reply

from .problems import BodyTooLarge, LengthRequired, MalformedBody, RequestInvalid, problem_for

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Route:
    """One operation of the public API, as the OpenAPI document describes it."""

    method: str
    path: str                      # OpenAPI form: /api/v1/consents/{id}/withdraw
    summary: str
    roles: tuple[str, ...]  # the caller needs one of them (by default: any staff role, never a family's)
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    status: int
    example: dict | None
    idempotent: bool
    responses: dict[int, str] = field(default_factory=dict)
    public: bool = False
    content_type: str = "application/json"


def _werkzeug_rule(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def errors_of(exc: ValidationError, prefix: str = "") -> list[dict]:
    """pydantic errors as [{field, message}], with dotted field paths; never the input values."""
    return [
        {"field": prefix + ".".join(str(part) for part in err["loc"]) if err["loc"] else prefix.rstrip(".") or "body",
         "message": err["msg"]}
        for err in exc.errors(include_input=False, include_url=False)
    ]


MAX_JSON_DEPTH = 32
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a UUID or another short token


def read_body(request, limit: int) -> bytes:
    """The request body, refused beyond `limit` bytes (413) before it is read; a chunked one without a
    Content-Length is refused (411) rather than read without a bound."""
    if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raise LengthRequired("send the body with a Content-Length")
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    return data


def parse_json(data: bytes):
    """JSON, refused (400) if malformed or nested deeper than MAX_JSON_DEPTH arrays/objects."""
    try:
        value = json.loads(data.decode("utf-8") or "null")
    except RecursionError as exc:
        raise MalformedBody(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # includes UnicodeDecodeError
        raise MalformedBody("the body is not valid JSON") from exc
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:  # iteratively, so a deep body cannot exhaust the stack here either
        item, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedBody(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


def idempotency_key_of(header: str | None) -> str | None:
    if header is not None and not IDEMPOTENCY_KEY.match(header):
        raise RequestInvalid([{"field": "Idempotency-Key",
                               "message": "1 to 128 printable ASCII characters without spaces"}])
    return header


def correlation_id_of(header: str | None) -> str:
    """The caller's correlation id if it is a short token (a UUID, say); otherwise a fresh one, never echoed."""
    if header and CORRELATION_ID.match(header):
        return header
    return str(uuid.uuid4())


def to_json(value) -> str:
    def default(obj):
        if isinstance(obj, (datetime, date)):
            return obj.isoformat()
        if isinstance(obj, Enum):
            return obj.value
        if isinstance(obj, BaseModel):
            return obj.model_dump(mode="json")
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.dumps(value, default=default)


class ApiEndpoint(HttpRequestHandler):
    """See the module docstring."""

    def __init__(self, method: str, path: str, *, roles: tuple[str, ...] = tuple(sorted(STAFF_ROLES)),
                 body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
                 status: int = 200, summary: str = "", example: dict | None = None,
                 idempotent: bool = False, public: bool = False, content_type: str = "application/json",
                 responses: dict[int, str] | None = None, **kwargs):
        self.route = Route(method, path, summary, roles, body, query, status, example, idempotent,
                           responses or {}, public, content_type)
        # a refusal by a service is the client's answer, not the gateway's failure: log it quietly
        kwargs.setdefault("expected_exceptions", (NotFound, Conflict, Forbidden, Invalid))
        super().__init__(method, _werkzeug_rule(path), **kwargs)

    def setup(self):
        super().setup()
        self.signer = CallerSigner(self.container.config["PONT_SETTINGS"].caller_signing_key)

    def handle_request(self, request):
        request.shallow = False
        try:
            args, kwargs = self._parse(request)
            correlation_id = correlation_id_of(request.headers.get("X-Correlation-ID"))
            done = Event()
            self.container.spawn_worker(
                self, args, kwargs, context_data={"correlation_id": correlation_id},
                handle_result=partial(self.handle_result, done),
            )
            result = done.wait()
            return self._response(result)
        except Exception as exc:  # every failure leaves as problem details
            return self.response_from_exception(exc)

    def _parse(self, request) -> tuple[tuple, dict]:
        route = self.route
        kwargs = dict(request.path_values)
        if route.public:
            return (), kwargs
        settings = self.container.config["PONT_SETTINGS"]
        caller = verify(request.headers.get("Authorization"), settings.jwt_secret, settings.oidc)
        if not caller.has_any(*route.roles):
            raise Forbidden(f"this needs one of the roles: {', '.join(route.roles)}")
        caller = replace(caller, assertion=self.signer.sign(caller.sub, caller.org, caller.roles))
        body = None
        if route.body is not None:
            raw = parse_json(read_body(request, settings.max_body_bytes))
            try:
                body = route.body.model_validate(raw)
            except ValidationError as exc:
                raise RequestInvalid(errors_of(exc)) from exc
        if route.query is not None:
            try:
                kwargs["query"] = route.query.model_validate(request.args.to_dict())
            except ValidationError as exc:
                raise RequestInvalid(errors_of(exc, "query.")) from exc
        if route.idempotent:
            kwargs["idempotency_key"] = idempotency_key_of(request.headers.get("Idempotency-Key"))
        return (caller, body), kwargs

    def _response(self, result) -> Response:
        if isinstance(result, Response):
            return result
        status, payload = result if isinstance(result, tuple) else (self.route.status, result)
        if isinstance(payload, str):
            return Response(payload, status=status, content_type=self.route.content_type)
        return Response(to_json(payload), status=status, content_type="application/json")

    def response_from_exception(self, exc):
        response = problem_for(exc)
        if response.status_code >= 500:
            log.error("gateway.request_failed", route=self.route.path, error_type=type(exc).__name__)
        return response


api = ApiEndpoint.decorator


def routes_of(service_cls: type) -> list[Route]:
    """The routes a service class serves, in the order its classes declare them."""
    routes: dict[str, Route] = {}
    for klass in reversed(service_cls.__mro__):
        for name, member in vars(klass).items():
            for entrypoint in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ()):
                if isinstance(entrypoint, ApiEndpoint):
                    routes[name] = entrypoint.route
    return list(routes.values())


def assertion(caller: Caller) -> str:
    """The caller as passed over RPC to the services: signed by the gateway, verified by them."""
    return caller.assertion


def sent(reply: Reply) -> dict:
    """A service's reply, read through its contract, as the API answers it: the fields the service
    sent (one it left out stays out, rather than appearing as its default)."""
    return reply.model_dump(exclude_unset=True)
