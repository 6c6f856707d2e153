"""The OpenAPI 3.1 document, generated from the routes and their pydantic models."""
from __future__ import annotations

from .api import IDEMPOTENCY_KEY, MAX_JSON_DEPTH, Route, routes_of

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def _operation(route: Route, schemas: dict) -> dict:
    op: dict = {"summary": route.summary, "responses": {}}
    if not route.public:
        op["description"] = "Roles: " + ", ".join(route.roles)
        # machine-readable, for agency systems and the authorisation matrix test
        op["x-pont-roles"] = sorted(route.roles)
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in _path_names(route.path)]
    if route.query is not None:
        for name, prop in route.query.model_json_schema().get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    if route.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "maxLength": 128}})
    if params:
        op["parameters"] = params
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        content = {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}
        if route.example:
            content["example"] = route.example
        op["requestBody"] = {"required": True, "content": {"application/json": content}}
    op["responses"][str(route.status)] = {"description": "success", "content": {route.content_type: {}}}
    problem_ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    errors = {} if route.public else {401: "missing, invalid or expired token", 403: "role not allowed"}
    if route.body is not None or route.query is not None:
        errors[422] = "invalid input: `errors` names each field"
    if route.body is not None:
        errors[400] = f"malformed JSON, or nested deeper than {MAX_JSON_DEPTH} levels"
        errors[411] = "a chunked body without a Content-Length"
        errors[413] = "a body larger than PONT_MAX_BODY_BYTES"
    if route.idempotent:
        errors[422] = "invalid input (or Idempotency-Key): `errors` names each field"
    errors.update(route.responses)
    for status, description in sorted(errors.items()):
        op["responses"][str(status)] = {"description": description, "content": problem_ref}
    if not route.public:
        op["security"] = [{"bearer": []}]
    return op


def _path_names(path: str) -> list[str]:
    import re

    return re.findall(r"\{(\w+)\}", path)


def document(service_cls: type) -> dict:
    schemas: dict = {"Problem": PROBLEM_SCHEMA}
    paths: dict = {}
    for route in routes_of(service_cls):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pont public API", "version": "1.0.0",
                 "description": "The coordination platform behind a Community Focused School."},
        "servers": [{"url": "http://127.0.0.1:8000"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "HS256 with PONT_JWT_SECRET (development, tests), or RS256/ES256 from the identity "
                               "provider's JWKS (PONT_OIDC_JWKS_URL; iss and aud checked)"}},
        },
    }
