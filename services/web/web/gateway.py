"""The gateway's public HTTP API, called with the signed-in user's bearer token, like any agency system."""
from __future__ import annotations

from dataclasses import dataclass, field

import requests


@dataclass
class Answer:
    """The gateway's answer: its status and JSON body (problem details when it refused)."""

    status: int
    body: object = None
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class GatewayUnavailable(Exception):
    """The gateway did not answer."""


class Gateway:
    def __init__(self, base_url: str, *, timeout: float = 30.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def call(self, method: str, path: str, token: str, body: dict | None = None,
             idempotency_key: str | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = requests.request(method, self.base_url + path, json=body, headers=headers,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise GatewayUnavailable(type(exc).__name__) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        errors = payload.get("errors") or [] if isinstance(payload, dict) and not response.ok else []
        return Answer(response.status_code, payload, errors)

    def download(self, path: str, token: str) -> tuple[int, bytes, dict]:
        """A file the gateway serves (a Common Transfer File): its status, bytes and headers."""
        try:
            response = requests.get(self.base_url + path, headers={"Authorization": f"Bearer {token}"},
                                    timeout=self.timeout)
        except requests.RequestException as exc:
            raise GatewayUnavailable(type(exc).__name__) from exc
        return response.status_code, response.content, dict(response.headers)
