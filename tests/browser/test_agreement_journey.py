"""The administrator's sharing agreements in headless Chromium, in English and in Welsh.

consent, the gateway and the web run as real nameko containers (a fresh PostgreSQL database)
on the real RabbitMQ, on a virtual host of their own (the gateway calls `consent` by its fixed
name). Each language has a web of its own, whose demonstration administrator is of a local
authority no other run uses: it proposes an agreement between two schools on the form (first
with one school, no purpose and no dates), sees it waiting for both schools' approval, and
revokes it (first without a reason); the browser journey is tests/browser/agreement_journey.py,
a process of its own as in test_clinic_journey.py. Each page is checked for its `lang`, its
heading and axe-core; screenshots go to docs/screenshots/.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from consent.service import ConsentService
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.testing import fresh_database, http_url, own_vhost, random_name, start_container, wait_until
from pont_shared.testing.fixtures import delete_queues
from web.service import WebService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def stack():
    """(a function starting a web for some organisations, gateway URL): consent and the gateway on their own vhost."""
    containers = []
    with ExitStack() as resources:
        uri = resources.enter_context(own_vhost("pont_web_agreements"))
        env = {"AMQP_URI": uri, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.2",
               "PONT_LOG_LEVEL": "WARNING", "PONT_ENV": "development"}

        def settings(name: str, database_url: str, **extra: str) -> Settings:
            return dataclasses.replace(Settings.from_env(name, {**env, **extra}, http_port=0),
                                       database_url=database_url)

        consent_db = resources.enter_context(fresh_database("pont_webag_consent"))
        try:
            containers.append(start_container(ConsentService, settings("consent", consent_db), "consent"))
            gateway = start_container(GatewayService, settings("gateway", "sqlite://"), "gateway")
            containers.append(gateway)

            def web(agencies: list[str]) -> str:
                started = start_container(WebService, settings("web", "sqlite://", PONT_AGENCIES=",".join(agencies),
                                                               PONT_GATEWAY_URL=http_url(gateway)),
                                          random_name("web"))
                containers.append(started)
                url = http_url(started)
                wait_until(lambda: requests.get(url + "/ready", timeout=5).status_code == 200, timeout=20)
                return url

            yield web
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


def _organisations() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"school:a{run}", f"school:b{run}", f"local_authority:{run}"]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_the_administrator_proposes_an_agreement_between_two_schools_and_revokes_it(stack, lang):
    organisations = _organisations()
    url = stack(organisations)
    command = [sys.executable, str(HERE / "agreement_journey.py"), "--web", url, "--lang", lang,
               "--schools", ",".join(organisations[:2]), "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == [
        "sign-in", "agreements-none", "agreement-new", "agreement-new-error", "agreements",
        "agreement-revoke-error", "agreements-revoked"]


def test_agreement_pages_need_the_admin_role_and_the_csrf_token_and_refuse_an_unknown_action(stack):
    url = stack(_organisations())

    def signed_in(who: str) -> tuple[requests.Session, str]:
        client = requests.Session()
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get(url + "/sign-in", timeout=10).text).group(1)
        signed = client.post(url + "/sign-in", data={"user": who, "csrf": csrf}, allow_redirects=False, timeout=10)
        assert signed.status_code == 303
        return client, csrf

    teacher, _ = signed_in("teacher")
    admin, csrf = signed_in("admin")

    refused = [teacher.get(url + path, allow_redirects=False, timeout=10).status_code
               for path in ("/agreements", "/agreements/new")]
    forged = admin.post(url + "/agreements/new", data={"csrf": "guess"}, allow_redirects=False, timeout=10)
    unknown = admin.post(url + "/agreements/a1/delete", data={"csrf": csrf}, allow_redirects=False, timeout=10)
    nobody = admin.post(url + "/agreements/a1/revoke", data={"csrf": csrf, "reason": "ended"},
                        headers={"Accept-Language": "en"}, allow_redirects=False, timeout=10)

    assert refused == [403, 403] and forged.status_code == 403 and unknown.status_code == 404
    assert nobody.status_code == 404 and "You cannot do that here." in nobody.text
