"""Signing in at an identity provider (OpenID Connect, code with PKCE) in headless Chromium, in English and Welsh.

The provider is the test's own (`pont_shared.testing.identity_provider`), its user a school
nurse; bookings, the gateway (which accepts the provider's access tokens) and the web (whose
sign-in goes to the provider) run as real nameko containers on the real RabbitMQ. The browser
journey is tests/browser/sign_in_journey.py, a process of its own as in test_clinic_journey.py;
each page is checked for its `lang`, its heading and axe-core.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from bookings.service import BookingsService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.testing import (
    AMQP_URI,
    free_port_run,
    fresh_database,
    http_url,
    random_name,
    start_container,
    wait_until,
)
from pont_shared.testing.fixtures import delete_queues
from pont_shared.testing.identity_provider import API_AUDIENCE, CLIENT_ID, USER, Provider
from web.service import WebService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def web_url():
    port = free_port_run(1)
    url = f"http://127.0.0.1:{port}"
    provider = Provider(redirect_url=f"{url}/sign-in/callback")
    provider.user = {**USER, "org": f"health:s{uuid.uuid4().hex[:8]}"}
    env = {"AMQP_URI": AMQP_URI, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_LOG_LEVEL": "WARNING",
           "PONT_ENV": "development", "PONT_OIDC_ISSUER": provider.url, "PONT_OIDC_JWKS_URL": f"{provider.url}/jwks",
           "PONT_OIDC_AUDIENCE": API_AUDIENCE, "PONT_OIDC_CLIENT_ID": CLIENT_ID,
           "PONT_OIDC_REDIRECT_URL": provider.redirect_url}

    def settings(service: str, database_url: str, **extra: str) -> Settings:
        return dataclasses.replace(Settings.from_env(service, {**env, **extra}, http_port=0),
                                   database_url=database_url)

    containers = []
    with fresh_database("pont_web_sign_in") as bookings_db:
        try:
            bookings_name = random_name("bookings")
            containers.append(start_container(BookingsService, settings("bookings", bookings_db), bookings_name))
            gateway = start_container(GatewayService, settings("gateway", "sqlite://"), random_name("gateway"),
                                      {"PONT_BOOKINGS_SERVICE": bookings_name})
            containers.append(gateway)
            web = settings("web", "sqlite://", PONT_GATEWAY_URL=http_url(gateway))
            containers.append(start_container(WebService, web, random_name("web"),
                                              {"WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}))
            wait_until(lambda: requests.get(url + "/ready", timeout=5).status_code == 200, timeout=20)
            yield url
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)
            provider.close()


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_the_nurse_signs_in_at_the_provider_and_a_stray_answer_is_refused(web_url, lang):
    command = [sys.executable, str(HERE / "sign_in_journey.py"), "--web", web_url, "--lang", lang,
               "--name", USER["name"], "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == ["sessions", "sign-in-failed", "sessions", "signed-out"]
