"""RFC 9457 problem details, and the one table mapping errors to HTTP statuses."""
from __future__ import annotations

import json

from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from werkzeug.wrappers import Response

from pont_shared.auth import Unauthenticated
from pont_shared.contract.errors import Conflict, Forbidden, Invalid, NotFound

PROBLEM_JSON = "application/problem+json"


class MalformedBody(Exception):
    """The request body is not JSON."""


class BodyTooLarge(Exception):
    """The request body is larger than PONT_MAX_BODY_BYTES."""


class LengthRequired(Exception):
    """A chunked request body without a Content-Length."""


class RequestInvalid(Exception):
    """The request does not match its schema; args[0] is a list of {field, message}."""


# exception class → (status, title); the first match in order wins
ERROR_TABLE: list[tuple[type[BaseException], int, str]] = [
    (Unauthenticated, 401, "Unauthenticated"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not found"),
    (Conflict, 409, "Conflict"),
    (MalformedBody, 400, "Malformed request body"),
    (BodyTooLarge, 413, "Request body too large"),
    (LengthRequired, 411, "Length required"),
    (RequestInvalid, 422, "Validation failed"),
    (Invalid, 422, "Validation failed"),
    (UnknownService, 503, "A Pont service is unavailable"),
    (RpcTimeout, 504, "A Pont service did not answer in time"),
    (RemoteError, 502, "A Pont service failed"),
]


def problem(status: int, title: str, detail: str = "", *, errors: list[dict] | None = None,
            extra: dict | None = None) -> Response:
    body = {"type": f"https://pont.cymru/problems/{status}", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(json.dumps(body), status=status, content_type=PROBLEM_JSON)


def problem_for(exc: BaseException) -> Response:
    """The problem response for an exception; anything unmapped is the server's fault."""
    for error_type, status, title in ERROR_TABLE:
        if isinstance(exc, error_type):
            if isinstance(exc, RequestInvalid):
                return problem(status, title, "the request has invalid fields", errors=exc.args[0])
            if isinstance(exc, Invalid):
                return problem(status, title, exc.args[0], errors=exc.errors)
            if isinstance(exc, Conflict) and len(exc.args) > 1 and isinstance(exc.args[1], dict):
                return problem(status, title, str(exc.args[0]), extra=exc.args[1])
            if isinstance(exc, (RemoteError, UnknownService, RpcTimeout)):
                return problem(status, title, "try again later")
            return problem(status, title, str(exc.args[0]) if exc.args else "")
    return problem(500, "Internal error", "the error has been logged")
