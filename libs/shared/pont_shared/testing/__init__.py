"""Testing helpers shared by every service's tests: waiting, databases, containers."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

T = TypeVar("T")

ADMIN_URL = os.environ.get("PONT_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")


def signed(caller: dict) -> str:
    """`caller` ({sub, org, roles}) asserted as the gateway does, with the development key: what a
    test calling a service's RPC directly passes as the caller (pont_shared.contract.caller)."""
    from pont_shared.contract.caller import DEV_CALLER_SIGNING_KEY, CallerSigner  # after green's monkey-patching
    return CallerSigner(DEV_CALLER_SIGNING_KEY).sign(caller["sub"], caller["org"], caller["roles"])


def wait_until(probe: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, message: str = "") -> T:
    """Call `probe` until it returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


@contextmanager
def service_process(spec: str, name: str, database_url: str, *, ready: Callable[[], bool], **env: str):
    """Run a service as its own process, as deployed (`pont_shared.operations.runner MODULE:CLASS`), on its
    own database; yield the process once `ready()` holds; stop it gracefully (SIGTERM) after."""
    from pont_shared.config import safe_name

    environment = {**os.environ, "AMQP_URI": AMQP_URI, "PONT_LOG_LEVEL": "WARNING", "PONT_ENV": "development",
                   f"PONT_{safe_name(name).upper()}_DATABASE_URL": database_url, **env}
    process = subprocess.Popen([sys.executable, "-m", "pont_shared.operations.runner", spec, "--name", name,
                                "--port", "0"], env=environment, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: process.poll() is not None or ready(), timeout=60, interval=0.1,
                   message=f"{spec} did not become ready")
        if process.poll() is not None:
            raise RuntimeError(f"{spec} exited with {process.returncode} while starting")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports, below the kernel's ephemeral range.

    A port picked by binding to 0 is ephemeral: between closing it and the service listening
    on it, one of the many outgoing connections starting up may take it. The agency links also
    take consecutive ports (base, base+1, ...), which binding to 0 does not check.
    """
    for base in random.sample(range(20000, 30000, count), 200):
        try:
            free_ports_at(base, count)
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def free_ports_at(base: int, count: int) -> None:
    sockets = []
    try:
        for port in range(base, base + count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
    finally:
        for sock in sockets:
            sock.close()


class MovableClock:
    """A service's clock under test (`PONT_CLOCK`): real time plus an offset the test moves, instead of waiting."""

    def __init__(self, start: datetime | None = None):
        """Real time, or time running on from `start`."""
        self.offset = timedelta() if start is None else start - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @contextmanager
    def at(self, moment: datetime):
        """Read `moment` (then on from it) inside the block; the time as before afterwards."""
        saved, self.offset = self.offset, moment - datetime.now(UTC)
        try:
            yield self
        finally:
            self.offset = saved


def random_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextmanager
def in_memory_units_of_work(metadata, tables, source: str):
    """For handler unit tests: `new()` gives a `UnitOfWork` on one in-memory SQLite database."""
    from sqlalchemy.orm import sessionmaker
    from sqlalchemy.pool import StaticPool

    from pont_shared.messaging.uow import UnitOfWork

    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    factory = sessionmaker(engine, expire_on_commit=False)
    try:
        yield lambda: UnitOfWork(factory, tables, source=source)
    finally:
        engine.dispose()


@contextmanager
def fresh_database(prefix: str = "pont_test"):
    """A new, empty PostgreSQL database for one test module; dropped afterwards."""
    name = random_name(prefix)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            # FORCE: a service still stopping may reconnect between a terminate and a plain DROP
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def drop_broker_connections_of_this_process() -> int:
    """Force-close, at the broker, every AMQP connection this process holds.

    Simulates a network failure for the code under test without touching other
    processes' connections (other test runs may share the broker).
    """
    return close_broker_connections(_local_ports_to(5672))


def close_broker_connections(local_ports: set[int]) -> int:
    """Force-close, at the broker, the AMQP connections from these local ports; how many."""
    import subprocess

    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "peer_port", "--no-table-headers"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    closed = 0
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) in local_ports:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", parts[0], "pont test: forced close"],
                           check=False, capture_output=True, timeout=60)
            closed += 1
    return closed


def _local_ports_to(remote_port: int) -> set[int]:
    """Local ports of this process's TCP connections to `remote_port` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def web_address() -> str:
    """A `WEB_SERVER_ADDRESS` on a free port, for a container under test (see `free_port_run`)."""
    return f"127.0.0.1:{free_port_run(1)}"


def start_container(service_cls, settings, name: str, extra: dict | None = None):
    """A started nameko container of `service_cls` under `name`, with `settings`, on a free port."""
    from nameko.containers import ServiceContainer

    config = {**settings.nameko_config(), "WEB_SERVER_ADDRESS": web_address(), **(extra or {})}
    container = ServiceContainer(type(service_cls.__name__, (service_cls,), {"name": name}), config)
    container.start()
    return container


def http_url(container) -> str:
    """Base URL of a running container's web server, from its configured address (`web_address()`)."""
    from nameko.web.server import WebServer

    for extension in container.extensions:
        if isinstance(extension, WebServer):
            host, port = extension.bind_addr
            if port == 0:
                raise ValueError("start the container on web_address(): a port chosen by the kernel is not readable")
            return f"http://127.0.0.1:{port}"
    raise LookupError(f"{container.service_name} serves no HTTP")


def bearer(sub: str, org: str, roles, secret: str | None = None, ttl_seconds: int = 3600) -> dict:
    """An Authorization header for the gateway, signed with the (test) JWT secret."""
    from pont_shared.auth import mint
    from pont_shared.config import DEV_JWT_SECRET

    return {"Authorization": f"Bearer {mint(sub, org, list(roles), secret or DEV_JWT_SECRET, ttl_seconds=ttl_seconds)}"}


def agreement_in_force(consent_rpc, agreement: dict, proposer: str = "local_authority:cardiff") -> str:
    """Over consent's RPC: an agreement proposed by `proposer`'s admin and approved by an admin of every party."""
    created = consent_rpc.create_agreement(agreement, signed({"sub": "admin", "org": proposer, "roles": ["admin"]}))
    for party in agreement["parties"]:
        consent_rpc.approve_agreement(created["id"], signed({"sub": "admin", "org": party, "roles": ["admin"]}))
    return created["id"]


def schema_drift(engine, metadata) -> list:
    """Differences between a migrated database and the service's table definitions."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


@contextmanager
def own_vhost(prefix: str = "pont_test"):
    """A RabbitMQ virtual host of its own, yielding its AMQP URI; deleted afterwards.

    For tests that run services under their real names (`consent`, `referrals`, …): on a
    vhost of their own they cannot meet another run's services of the same name.
    """
    import subprocess

    name = random_name(prefix)

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield urlsplit(AMQP_URI)._replace(path=f"/{name}").geturl()
    finally:
        ctl("delete_vhost", name)


class SmtpSink:
    """A local SMTP server (aiosmtpd, a process of its own) that keeps what it is sent in a Maildir."""

    def __init__(self, port: int, directory: str):
        self.url = f"smtp://127.0.0.1:{port}"
        self.directory = directory

    def messages(self) -> list:
        """Every message received so far, as `email.message.Message`s, oldest first."""
        import mailbox
        if not os.path.isdir(os.path.join(self.directory, "cur")):
            return []  # nothing delivered yet: the sink makes its Maildir with the first message
        box = mailbox.Maildir(self.directory, create=False)
        return sorted((message for _, message in box.items()), key=lambda message: message.get_date())


@contextmanager
def smtp_sink():
    """An `SmtpSink` on a free port for the duration (development and tests: notices go nowhere else)."""
    import tempfile
    with tempfile.TemporaryDirectory() as work:
        directory, port = os.path.join(work, "mail"), free_port_run(1)
        process = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                                    "-c", "aiosmtpd.handlers.Mailbox", directory],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _accepts(port), timeout=20, interval=0.1, message="the SMTP sink never listened")
            yield SmtpSink(port, directory)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
