"""RabbitMQ users and permissions: one user per service and per organisation's agency_link.

Generated from the configuration that names them (the services `make start` runs and
`PONT_AGENCIES`), none an administrator, each granted only what it needs:

* configure / write / read on its own queues (`<user>.*`: event consumers and dead letters;
  `rpc-<user>`; its RPC reply queues `rpc.reply-<user>-*`), its own retry exchanges
  (`pont.requeue.<user>`, `pont.delay.<user>.*`) and dead-letter exchange (`pont.dead.<user>`);
* write / read, never configure, on the shared exchanges it publishes to or binds from
  (`pont.events`, `nameko-rpc`, and `pont.disclosed` for those that send or receive
  disclosures): the definitions make them, and no service's user can delete or redeclare one
  (`pont_shared.messaging.topology.ensure_shared`);
* topic permissions: on `pont.events` it may publish only the event types it owns and bind
  only to those it consumes; on `pont.disclosed` an agency may bind only its own
  organisation's key, and only referrals and transitions may publish; on `nameko-rpc` it may
  bind only its own RPC queue's key (`<user>.*`) or a reply queue's uuid, and publish only
  replies (a uuid) and requests to the services its class calls (its `RpcProxy` dependencies:
  an agency_link calls none, so it cannot ask any service anything, as anyone).

    python -m pont_shared.operations.broker_access definitions [--vhost /] > definitions.json
    python -m pont_shared.operations.broker_access uris          # the PONT_<SERVICE>_AMQP_URI lines

Passwords come from `PONT_BROKER_PASSWORD_<USER>` (e.g. `PONT_BROKER_PASSWORD_CONSENT`), or
from a JSON file of `{user: password}` (`--passwords`); `make start` generates them into
`.run/broker-passwords.json` (mode 0600) and imports the definitions with `rabbitmqctl`.
A password is never printed: the definitions carry salted SHA-256 hashes. `--development`
gives every user without one the development password `pont-broker-dev` (docker-compose's
default; `PONT_ENV=production` services refuse it), and `--merge FILE` adds the users to an
existing definitions document (the operator user, the vhost), as infra/rabbitmq/definitions.json:

    python -m pont_shared.operations.broker_access definitions --development \
        --merge infra/rabbitmq/definitions.json > definitions.new && mv definitions.new infra/rabbitmq/definitions.json
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from pont_shared.config import DEV_BROKER_PASSWORD, Settings, safe_name
from pont_shared.contract.envelope import DISCLOSURES_EXCHANGE, EVENTS_EXCHANGE
from pont_shared.messaging.broker import parse_brokers
from pont_shared.messaging.topology import RPC_EXCHANGE

NOTHING = "^$"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
AGENCY_LINK = "agency_link.service:AgencyLinkService"

# the event types (routing keys on pont.events) each service publishes; nobody else may
PUBLISHES = {
    "consent": r"pont\.(consent|ledger)\..+|pont\.disclosure\.recorded\.v\d+",
    "referrals": r"pont\.referral\..+",
    "bookings": r"pont\.(session|appointment)\..+",
    "transitions": r"pont\.transition\..+",
    "agency_link": r"pont\.agency\..+",
}
SENDS_DISCLOSURES = {"referrals", "transitions"}


def users(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """{user: (MODULE:CLASS, organisation or None)} for every process `make start` runs."""
    from pont_shared.operations.stack import planned
    found = {}
    for name, args, _port in planned(settings):
        found[name] = (args[0], args[args.index("--org") + 1] if "--org" in args else None)
    return found


def consumed(spec: str, org: str | None) -> tuple[set[str], set[str]]:
    """(event types it binds on pont.events, keys it binds on pont.disclosed), from its `@handles`."""
    module_name, class_name = spec.split(":")
    service_cls = getattr(importlib.import_module(module_name), class_name)
    events, disclosures = set(), set()
    for attribute in dir(service_cls):
        for entrypoint in getattr(getattr(service_cls, attribute), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            model = getattr(entrypoint, "event_model", None)
            if model is None:
                continue
            key = entrypoint.routing_key_for({"org": org or ""})
            (disclosures if model.EXCHANGE == DISCLOSURES_EXCHANGE else events).add(key)
    return events, disclosures


def called(spec: str) -> set[str]:
    """The routing keys on nameko-rpc its requests may use: `<service>\\..+` for each service its
    `RpcProxy` dependencies call (one with no fixed target calls the agency links)."""
    from pont_shared.messaging.rpc import RpcProxy

    module_name, class_name = spec.split(":")
    service_cls = getattr(importlib.import_module(module_name), class_name)
    targets = {getattr(service_cls, attribute).target for attribute in dir(service_cls)
               if isinstance(getattr(service_cls, attribute), RpcProxy)}
    return {rf"{re.escape(target)}\..+" if target else r"agency_link_.+\..+" for target in targets}


def _alternatives(patterns) -> str:
    patterns = sorted(patterns)
    return f"^({'|'.join(patterns)})$" if patterns else NOTHING


def permissions(user: str, role: str, events_bound: set[str], disclosures_bound: set[str],
                calls: set[str] = frozenset()) -> dict:
    """configure/write/read regexes (and topic permissions) for one user; `calls`: see `called`."""
    me = re.escape(user)
    own = [rf"{me}\..+", f"rpc-{me}", rf"rpc\.reply-{me}-.+",
           rf"pont\.requeue\.{me}", rf"pont\.delay\.{me}\..+", rf"pont\.dead\.{me}"]
    shared = [re.escape(EVENTS_EXCHANGE), re.escape(RPC_EXCHANGE)]
    writes = [re.escape(DISCLOSURES_EXCHANGE)] if role in SENDS_DISCLOSURES else []
    reads = [re.escape(DISCLOSURES_EXCHANGE)] if disclosures_bound else []
    return {
        # configure on its own queues and exchanges only: declaring a shared exchange would let it delete one too
        "permission": {"configure": _alternatives(own),
                       "write": _alternatives(own + shared + writes),
                       "read": _alternatives(own + shared + reads)},
        "topic": [
            {"exchange": EVENTS_EXCHANGE,
             "write": f"^({PUBLISHES[role]})$" if role in PUBLISHES else NOTHING,
             "read": _alternatives(re.escape(key) for key in events_bound)},
            {"exchange": DISCLOSURES_EXCHANGE,
             "write": ".*" if role in SENDS_DISCLOSURES else NOTHING,
             "read": _alternatives(re.escape(key) for key in disclosures_bound)},
            {"exchange": RPC_EXCHANGE, "write": _alternatives([UUID, *calls]),
             "read": _alternatives([rf"{me}\.\*", UUID])},
        ],
    }


def merged(base: dict, generated: dict) -> dict:
    """`base` with `generated`'s users, permissions and exchanges (replacing any of the same name)."""
    keys = {"users": lambda i: i["name"], "vhosts": lambda i: i["name"],
            "permissions": lambda i: (i["user"], i["vhost"]),
            "topic_permissions": lambda i: (i["user"], i["vhost"], i["exchange"]),
            "exchanges": lambda i: (i["name"], i["vhost"])}
    document = dict(base)
    for section, key in keys.items():
        new = generated.get(section, [])
        replaced = {key(item) for item in new}
        document[section] = [i for i in base.get(section, []) if key(i) not in replaced] + new
    return document


def password_hash(password: str) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password))."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_variable(user: str) -> str:
    return f"PONT_BROKER_PASSWORD_{safe_name(user).upper()}"


def definitions(settings: Settings, passwords: dict[str, str], vhost: str = "/") -> dict:
    """A RabbitMQ definitions document (`rabbitmqctl import_definitions`, or `load_definitions`)."""
    document = {"users": [], "vhosts": [{"name": vhost}], "permissions": [], "topic_permissions": [],
                "exchanges": [{"name": name, "vhost": vhost, "type": kind, "durable": True, "auto_delete": False,
                               "internal": False, "arguments": {}}
                              for name, kind in ((EVENTS_EXCHANGE, "topic"), (DISCLOSURES_EXCHANGE, "topic"),
                                                 (RPC_EXCHANGE, "topic"))]}
    for user, (spec, org) in users(settings).items():
        role = "agency_link" if org is not None else user
        access = permissions(user, role, *consumed(spec, org), calls=called(spec))
        add_user(document, user, passwords[user], access, vhost)
    return document


def add_user(document: dict, user: str, password: str, access: dict, vhost: str) -> None:
    """Add one user (no tags: not an administrator) with `permissions(...)` to a definitions document."""
    document["users"].append({"name": user, "password_hash": password_hash(password),
                              "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
    document["permissions"].append({"user": user, "vhost": vhost, **access["permission"]})
    document["topic_permissions"].extend({"user": user, "vhost": vhost, **topic} for topic in access["topic"])


def load_passwords(settings: Settings, path: Path | None, *, create: bool = False,
                   development: bool = False) -> dict[str, str]:
    """Each user's password: `PONT_BROKER_PASSWORD_<USER>`, else `path` (created, 0600, if asked)."""
    stored = json.loads(path.read_text()) if path is not None and path.exists() else {}
    passwords, changed = {}, False
    for user in users(settings):
        password = os.environ.get(password_variable(user)) or stored.get(user)
        if password is None and development:
            password = DEV_BROKER_PASSWORD
        if password is None:
            if not create:
                raise SystemExit(f"no password for broker user {user}: set {password_variable(user)}")
            password, changed = secrets.token_urlsafe(24), True
        passwords[user] = stored[user] = password
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored, indent=1))
    return passwords


def service_uris(settings: Settings, passwords: dict[str, str], vhost: str | None = None) -> dict[str, str]:
    """{PONT_<USER>_AMQP_URI: uri}: the shared AMQP_URI's brokers, as each user."""
    uris = {}
    for user, password in passwords.items():
        parts = []
        for broker in parse_brokers(settings.amqp_uri):
            scheme = "amqps" if broker.tls else "amqp"
            name = vhost if vhost is not None else broker.virtual_host
            path = "" if name == "/" else quote(name, safe="")
            parts.append(f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{broker.address}/{path}")
        uris[f"PONT_{safe_name(user).upper()}_AMQP_URI"] = ";".join(parts)
    return uris


def import_definitions(document: dict, timeout: float = 60.0) -> None:
    """Import `document` with `rabbitmqctl` and wait until it can be seen: RabbitMQ imports
    asynchronously. Raises RuntimeError naming the exit status.

    The file is one the broker's own (unprivileged) CLI can read, removed once imported; it holds
    salted password hashes, never a password.
    """
    with tempfile.NamedTemporaryFile("w", prefix="pont-broker-", suffix=".json") as file:
        json.dump(document, file)
        file.flush()
        os.chmod(file.name, 0o644)
        result = subprocess.run(["rabbitmqctl", "import_definitions", file.name],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl import_definitions exited {result.returncode}")
        deadline = time.monotonic() + timeout
        while not _imported(document, timeout):
            if time.monotonic() > deadline:
                raise RuntimeError("the imported definitions did not appear")
            time.sleep(0.2)


def _imported(document: dict, timeout: float) -> bool:
    """Whether the last things an import creates (topic permissions, then exchanges) are there."""
    for vhost in {item["vhost"] for item in document["topic_permissions"] + document["exchanges"]}:
        for command, key, wanted in (
                ("list_topic_permissions", "user",
                 {t["user"] for t in document["topic_permissions"] if t["vhost"] == vhost}),
                ("list_exchanges", "name", {e["name"] for e in document["exchanges"] if e["vhost"] == vhost})):
            listed = subprocess.run(["rabbitmqctl", "-q", command, "-p", vhost, "--formatter", "json"],
                                    capture_output=True, text=True, timeout=timeout)
            if listed.returncode != 0 or not wanted <= {row[key] for row in json.loads(listed.stdout or "[]")}:
                return False
    return True


def provision(settings: Settings, run_dir: Path) -> dict[str, str]:
    """For `make start`: each user, with a password generated once and kept in `run_dir`, imported
    into the local broker with `rabbitmqctl` (as its operator); returns each service's URI variable.
    Returns {} (every service then uses AMQP_URI) when rabbitmqctl cannot reach the broker."""
    passwords = load_passwords(settings, run_dir / "broker-passwords.json", create=True)
    try:
        import_definitions(definitions(settings, passwords, parse_brokers(settings.amqp_uri)[0].virtual_host))
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        print(f"broker users not created ({exc}): every service uses AMQP_URI", file=sys.stderr)
        return {}
    return service_uris(settings, passwords)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["definitions", "uris", "users"])
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--passwords", type=Path, help="JSON {user: password} (default: PONT_BROKER_PASSWORD_*)")
    parser.add_argument("--development", action="store_true", help=f"default password {DEV_BROKER_PASSWORD}")
    parser.add_argument("--merge", type=Path, help="a definitions document to add the users to")
    args = parser.parse_args(argv)
    settings = Settings.from_env("tools")
    if args.command == "users":
        print("\n".join(users(settings)))
        return 0
    passwords = load_passwords(settings, args.passwords, development=args.development)
    if args.command == "definitions":
        document = definitions(settings, passwords, args.vhost)
        if args.merge:
            document = merged(json.loads(args.merge.read_text()), document)
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        for variable, uri in service_uris(settings, passwords, args.vhost).items():
            print(f"{variable}={uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
