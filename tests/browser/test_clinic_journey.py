"""The nurse's clinic flow and the DSL's review queue in headless Chromium, in English and in Welsh.

The gateway, bookings, the host school's agency_link and the web run as real nameko containers
(fresh PostgreSQL databases, organisations no other test uses) on the real RabbitMQ; the browser
journey itself (tests/browser/journey.py) runs in a process of its own, since Playwright's sync
API cannot run under the eventlet monkey patching this process needs. Each page visited is
checked for its `lang`, its heading in the chosen language and axe-core (no serious or critical
violations). Screenshots go to docs/screenshots/ (PONT_SCREENSHOTS=0 leaves them alone).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from agency_link.service import AgencyLinkService
from bookings.service import BookingsService
from consent.service import ConsentService
from gateway.rpc import agency_link_name
from gateway.service import GatewayService
from pont_shared.config import Settings
from pont_shared.identity import make_upn
from pont_shared.testing import AMQP_URI, fresh_database, http_url, random_name, start_container, wait_until
from pont_shared.testing.fixtures import delete_queues
from web.service import WebService

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def _settings(service: str, database_url: str, **env: str) -> Settings:
    env = {"AMQP_URI": AMQP_URI, "PONT_RETRY_DELAYS": "0.05,0.1,0.2", "PONT_OUTBOX_POLL_SECONDS": "0.2",
           "PONT_LOG_LEVEL": "WARNING", "PONT_ENV": "development", **env}
    return dataclasses.replace(Settings.from_env(service, env, http_port=0), database_url=database_url)



@pytest.fixture(scope="module")
def platform():
    """(web URL, school, nurse's organisation): the five services, under names no other test uses."""
    site, health = f"school:w{uuid.uuid4().hex[:10]}", f"health:w{uuid.uuid4().hex[:8]}"
    containers = []
    with fresh_database("pont_web_bookings") as bookings_db, fresh_database("pont_web_link") as link_db, \
            fresh_database("pont_web_consent") as consent_db:
        try:
            bookings_name, consent_name = random_name("bookings"), random_name("consent")
            containers.append(start_container(BookingsService, _settings("bookings", bookings_db), bookings_name))
            # the DSL's review queue also lists the disclosures kept from families that are due for review
            containers.append(start_container(ConsentService, _settings("consent", consent_db), consent_name))
            link_name = agency_link_name(site)  # the name the gateway calls the school's agency_link by
            containers.append(start_container(AgencyLinkService, _settings(link_name, link_db), link_name,
                                              {"org": site}))
            gateway = start_container(GatewayService, _settings("gateway", "sqlite://"), random_name("gateway"),
                             {"PONT_BOOKINGS_SERVICE": bookings_name, "PONT_CONSENT_SERVICE": consent_name})
            containers.append(gateway)
            web = start_container(WebService, _settings("web", "sqlite://", PONT_AGENCIES=f"{site},{health}",
                                               PONT_GATEWAY_URL=http_url(gateway)), random_name("web"))
            containers.append(web)
            url = http_url(web)
            wait_until(lambda: requests.get(url + "/ready", timeout=5).status_code == 200, timeout=20)
            yield url, site, health
        finally:
            for container in reversed(containers):
                container.stop()
                delete_queues(container)


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_the_nurse_books_and_records_was_not_brought_and_the_dsl_sees_it(platform, lang):
    url, site, _health = platform
    yesterday = (date.today() - timedelta(days=1)).isoformat()  # over, so an outcome can be recorded
    command = [sys.executable, str(HERE / "journey.py"), "--web", url, "--lang", lang, "--site", site,
               "--room", f"Ystafell feddygol {uuid.uuid4().hex[:6]}", "--day", yesterday,
               "--upn", make_upn(random.randrange(10**8, 10**9)), "--shots", str(SCREENSHOTS)]
    if os.environ.get("PONT_SCREENSHOTS", "1") != "0":
        command.append("--shots-wanted")
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pages_checked"] == [
        "sign-in", "sessions", "session-new", "session-new-error", "session", "session-booked",
        "session-was-not-brought", "sign-in", "reviews"]


def test_a_form_post_without_the_session_csrf_token_is_refused(platform):
    url, _site, _health = platform
    client = requests.Session()
    assert client.get(url + "/sign-in", timeout=10).status_code == 200
    cookie = client.cookies.get("pont_session")

    refused = client.post(url + "/sign-in", data={"user": "nurse"}, allow_redirects=False, timeout=10)
    forged = client.post(url + "/sign-in", data={"user": "nurse", "csrf": "guess"}, allow_redirects=False,
                         timeout=10)

    assert cookie and refused.status_code == 403 and forged.status_code == 403
    assert client.get(url + "/sessions", allow_redirects=False, timeout=10).headers["Location"].endswith("/sign-in")


def test_the_session_cookie_is_httponly_samesite_lax_and_cannot_be_forged(platform):
    url, _site, _health = platform
    response = requests.get(url + "/sign-in", timeout=10)
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie

    forged = requests.get(url + "/sessions", cookies={"pont_session": "eyJjc3JmIjoieCIsInVzZXIiOnt9fQ.x.y"},
                          allow_redirects=False, timeout=10)
    assert forged.status_code == 303 and forged.headers["Location"].endswith("/sign-in")
