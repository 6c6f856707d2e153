"""The fault suite's load: concurrent clients raising referrals through the public API, and
what must hold afterwards (every accepted referral exactly once in the service and in the
receiving agency's own store, nothing dead-lettered; every service ready again)."""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import requests
from sqlalchemy import create_engine, text

from pont_shared.identity import make_upn
from pont_shared.testing import bearer, wait_until

CLIENTS = 8
RECOVERY_SECONDS = 30
RETRY_PAUSE = 0.2  # a client's pause before it tries a failed request again
SCHOOL, AGENCY = "school:6612001", "social_care:cardiff"
AGENCY_LINK = "agency_link_social_care_cardiff"


class Clients:
    """`CLIENTS` threads raising safeguarding referrals until stopped; each request is retried
    with its own Idempotency-Key until it is answered with something other than a 5xx."""

    def __init__(self, stack):
        self.stack = stack
        self.dsl = bearer("dsl-faults", SCHOOL, ["dsl"], secret=stack.secret)
        self.accepted: dict[str, dict] = {}   # Idempotency-Key → the 201 body
        self.accepted_at: list[float] = []    # when each was answered (time.monotonic)
        self.refused: list[tuple[int, str]] = []
        self.given_up: list[str] = []
        self._stopping = threading.Event()
        # spread over the gateways (one, or each replica's)
        self._threads = [threading.Thread(target=self._client, args=(stack.gateways[n % len(stack.gateways)],),
                                          daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=300)

    def _client(self, gateway: str) -> None:
        with requests.Session() as http:
            while not self._stopping.is_set():
                self._raise_one(http, gateway)

    def _raise_one(self, http: requests.Session, gateway: str) -> None:
        key, serial = str(uuid.uuid4()), uuid.uuid4().int % 10**9
        body = {"child": {"upn": make_upn(serial), "given_name": f"Ffion{serial}", "family_name": "Evans",
                          "date_of_birth": "2014-05-06"},
                "to_org": AGENCY, "service": "social_care", "reason": "disclosure", "urgency": "safeguarding",
                "details": "Disclosed harm at home.", "share": ["contact", "safeguarding"],
                "information": {"safeguarding": "Disclosure at school."}, "basis": "safeguarding",
                "justification": "Child disclosed harm at home today."}
        deadline, response = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            try:
                response = http.post(f"{gateway}/api/v1/referrals", json=body, timeout=15,
                                     headers={**self.dsl, "Idempotency-Key": key})
            except requests.RequestException:
                response = None
            if response is not None and response.status_code == 201:
                self.accepted[key] = response.json()
                self.accepted_at.append(time.monotonic())
                return
            if response is not None and response.status_code < 500:
                self.refused.append((response.status_code, response.text[:300]))
                return
            time.sleep(RETRY_PAUSE)
        self.given_up.append(f"{response.status_code} {response.text[:300]}" if response is not None else "no answer")

    def longest_pause(self, since: float) -> float:
        """The longest time after `since` that no referral was accepted (to the last one accepted)."""
        times = sorted(at for at in self.accepted_at if at >= since)
        return max((later - earlier for earlier, later in zip([since, *times], times, strict=False)), default=0.0)

    def wait_for(self, more: int, timeout: float) -> None:
        """Until `more` further referrals have been accepted."""
        target = len(self.accepted) + more
        wait_until(lambda: len(self.accepted) >= target, timeout=timeout, interval=0.1,
                   message=f"clients had {len(self.accepted)} of {target} referrals accepted")


def rows(url: str, query: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return db.execute(text(query)).all()
    finally:
        engine.dispose()


def assert_each_accepted_referral_exists_exactly_once(stack, clients: Clients) -> None:
    assert clients.refused == [] and clients.given_up == [], {
        name: stack.log_tail(name, 10) for name in ("gateway", "referrals", "consent")}
    accepted_ids = {body["id"] for body in clients.accepted.values()}
    assert len(accepted_ids) == len(clients.accepted)  # no two keys answered with one referral
    children = Counter(child_ref for (child_ref,) in rows(stack.databases["referrals"],
                                                           "SELECT child_ref FROM referrals"))
    assert [ref for ref, count in children.items() if count > 1] == []  # one child per key: no key acted twice
    stored = {row_id for (row_id,) in rows(stack.databases["referrals"], "SELECT id FROM referrals")}
    assert accepted_ids <= stored

    def copies() -> Counter:
        return Counter(subject for (subject,) in rows(stack.databases[AGENCY_LINK],
                                                       "SELECT subject_id FROM disclosures"))

    wait_until(lambda: accepted_ids <= set(copies()), timeout=60, interval=0.5,
               message="not every accepted referral reached the agency's own store")
    assert [subject for subject, count in copies().items() if count > 1] == []
    # an outage or a crash is no handler's failure: nothing was given up on
    assert stack.dead_letters() == {}
    dsl = bearer("dsl-faults", SCHOOL, ["dsl"], secret=stack.secret)
    for referral_id in list(accepted_ids)[:50]:
        assert requests.get(f"{stack.gateway}/api/v1/referrals/{referral_id}", headers=dsl, timeout=10).ok


def wait_until_recovered(stack, since: float) -> float:
    """Seconds from `since` until every service answers /ready; fails after RECOVERY_SECONDS."""
    wait_until(stack.all_ready, timeout=RECOVERY_SECONDS, interval=0.2,
               message="not every service was ready again: " + ", ".join(
                   name for name in stack.ports if not stack.ready(name)))
    return time.monotonic() - since



def approve_agreement(stack) -> None:
    """An agreement between the school and the agency for referrals, approved by both."""
    admin = bearer("admin-faults", "local_authority:cardiff", ["admin"], secret=stack.secret)
    response = requests.post(f"{stack.gateway}/api/v1/agreements", headers=admin, timeout=30, json={
        "parties": [SCHOOL, AGENCY], "purposes": ["referral"], "categories": ["contact", "safeguarding"],
        "valid_from": "2020-01-01", "valid_to": "2099-12-31"})
    assert response.status_code == 201, response.text
    for party in (SCHOOL, AGENCY):
        approved = requests.post(f"{stack.gateway}/api/v1/agreements/{response.json()['id']}/approve", timeout=30,
                                 headers=bearer("admin-faults", party, ["admin"], secret=stack.secret))
        assert approved.status_code == 200, approved.text
