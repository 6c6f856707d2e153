"""The fault suite's own RabbitMQ node and PostgreSQL server, and the whole stack on them.

Faults are injected into real servers: the suite stops and starts a broker and restarts a
database. So that no other test run on this machine (which shares the broker on 5672 and
PostgreSQL on 5432) feels them, the suite starts a RabbitMQ node and a PostgreSQL server of
its own, on free ports in temporary directories, from the same installed binaries; then the
whole stack as `make start` runs it (`pont_shared.operations.stack`, under supervisord) on them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from pont_shared.config import safe_name
from pont_shared.testing import free_port_run, wait_until

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]) if Path("/usr/lib/postgresql").exists() else None


def _run(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=timeout, **kwargs)


class Broker:
    """A RabbitMQ node of the suite's own: `stop()` / `start()` are `rabbitmqctl stop_app` / `start_app`."""

    def __init__(self, work: Path, port: int, dist_port: int):
        self.node = f"pontfault{uuid.uuid4().hex[:6]}@localhost"
        self.port = port
        self.uri = f"amqp://guest:guest@127.0.0.1:{port}/"
        (work / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
        (work / "enabled_plugins").write_text("[].\n")
        (work / "env.conf").write_text("")
        shutil.chown(work, "rabbitmq", "rabbitmq")
        for child in work.iterdir():
            shutil.chown(child, "rabbitmq", "rabbitmq")
        self.env = {**os.environ, "RABBITMQ_CONF_ENV_FILE": str(work / "env.conf"), "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_CONFIG_FILE": str(work / "rabbitmq.conf"), "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(work / "log"), "RABBITMQ_PID_FILE": str(work / "pid"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(work / "enabled_plugins"),
                    "RABBITMQ_DIST_PORT": str(dist_port), "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return _run("rabbitmqctl", "-q", "-n", self.node, *args)

    def uri_for(self, vhost: str) -> str:
        return self.uri + vhost

    def boot(self) -> None:
        _run("rabbitmq-server", "-detached", env=self.env)
        wait_until(self._up, timeout=90, interval=0.5, message=f"RabbitMQ node {self.node} did not start")

    def _up(self) -> bool:
        try:
            self.ctl("await_startup")
            return True
        except subprocess.CalledProcessError:
            return False

    def stop(self) -> None:
        self.ctl("stop_app")

    def start(self) -> None:
        self.ctl("start_app")

    def shutdown(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.ctl("stop")


class Cluster:
    """Three RabbitMQ nodes of the suite's own, clustered; clients get them as a host list.
    `stop_node(i)` / `start_node(i)`: one node's `stop_app` / `start_app`."""

    def __init__(self, nodes: list[Broker]):
        self.nodes, self.down = nodes, set()

    @property
    def node(self) -> str:   # where rabbitmqctl goes: a running node
        return self._running().node

    def _running(self) -> Broker:
        return next(node for index, node in enumerate(self.nodes) if index not in self.down)

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self._running().ctl(*args)

    def uri_for(self, vhost: str) -> str:
        return ";".join(node.uri_for(vhost) for node in self.nodes)

    def boot(self) -> None:
        for node in self.nodes:
            node.boot()
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", self.nodes[0].node)
            node.ctl("start_app")

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop()
        self.down.add(index)

    def start_node(self, index: int) -> None:
        self.nodes[index].start()
        self.down.discard(index)

    def shutdown(self) -> None:
        for node in reversed(self.nodes):
            node.shutdown()


class Postgres:
    """A PostgreSQL server of the suite's own, trust authentication for `postgres`."""

    def __init__(self, work: Path, port: int):
        self.data, self.port = work / "data", port
        self.options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        self.log = work / "log"
        shutil.chown(work, "postgres", "postgres")
        self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"

    def ctl(self, *args: str) -> None:
        _run("runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def boot(self) -> None:
        _run("runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
             "-U", "postgres")
        self.ctl("-o", self.options, "-l", str(self.log), "-w", "start")

    def restart(self) -> None:
        self.ctl("-o", self.options, "-l", str(self.log), "-m", "fast", "-w", "restart")

    def create_database(self, name: str) -> str:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    def shutdown(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.ctl("-m", "immediate", "-w", "stop")


@pytest.fixture(scope="session")
def fault_broker():
    with tempfile.TemporaryDirectory(prefix="pont-fault-broker-") as work:
        base = free_port_run(2)
        broker = Broker(Path(work), base, base + 1)
        broker.boot()
        try:
            yield broker
        finally:
            broker.shutdown()


@pytest.fixture(scope="session")
def fault_cluster():
    with contextlib.ExitStack() as folders:
        base = free_port_run(6)
        cluster = Cluster([Broker(Path(folders.enter_context(tempfile.TemporaryDirectory(prefix="pont-cluster-"))),
                                  base + 2 * n, base + 2 * n + 1) for n in range(3)])
        try:
            cluster.boot()
            yield cluster
        finally:
            cluster.shutdown()


@pytest.fixture(scope="session")
def fault_postgres():
    with tempfile.TemporaryDirectory(prefix="pont-fault-pg-") as work:
        postgres = Postgres(Path(work), free_port_run(1))
        postgres.boot()
        try:
            yield postgres
        finally:
            postgres.shutdown()


class Stack:
    """The whole stack as `make start` runs it, on the suite's broker and database server:
    `replicas` copies of each service (`PONT_REPLICAS`), on a virtual host and databases of its own."""

    AGENCIES = ("school:6612001", "social_care:cardiff")
    SERVICES = ("consent", "referrals", "bookings", "transitions", "gateway", "web")

    def __init__(self, broker: Broker | Cluster, postgres: Postgres, run_dir: str, secret: str, replicas: int = 1,
                 settings: dict[str, str] | None = None):
        self.broker, self.postgres, self.secret = broker, postgres, secret
        tag = self.vhost = uuid.uuid4().hex[:6]
        broker.ctl("add_vhost", tag)
        broker.ctl("set_permissions", "-p", tag, "guest", ".*", ".*", ".*")
        self.amqp_uri = broker.uri_for(tag)
        services = [*self.SERVICES, *(f"agency_link_{safe_name(org)}" for org in self.AGENCIES)]
        step = len(services)
        base = free_port_run(step * replicas)
        first = {name: base + index for index, name in enumerate(services)}
        # every process: the first copy of a service under its own name, copy k as `<name>-k` (stack.replicated)
        self.ports = {name if k == 1 else f"{name}-{k}": port + (k - 1) * step
                      for name, port in first.items() for k in range(1, replicas + 1)}
        self.env = {**os.environ, "AMQP_URI": self.amqp_uri, "PONT_JWT_SECRET": secret,
                    "PONT_AGENCIES": ",".join(self.AGENCIES), "PONT_RUN_DIR": run_dir, "PONT_LOG_LEVEL": "WARNING",
                    "PONT_AGENCY_LINK_BASE_PORT": str(first[services[len(self.SERVICES)]]),
                    "PONT_GATEWAY_RPC_TIMEOUT_SECONDS": "5", "PONT_RETRY_DELAYS": "0.2,0.5,1,2,4",
                    "PONT_REPLICAS": str(replicas), "PONT_REPLICA_PORT_STEP": str(step),
                    "RABBITMQ_NODENAME": broker.node,   # rabbitmqctl (make start's broker users) on this node
                    **(settings or {})}
        self.databases = {}
        for name in services:
            if name.startswith("agency_link_"):
                self.env[f"PONT_{name.upper()}_DATABASE_URL"] = self.databases[name] = \
                    postgres.create_database(f"{name}_{tag}")
                continue
            self.env[f"PONT_{name.upper()}_PORT"] = str(first[name])
            if name not in ("gateway", "web"):
                self.env[f"PONT_{name.upper()}_DATABASE_URL"] = self.databases[name] = \
                    postgres.create_database(f"{name}_{tag}")
        self.run_dir = Path(run_dir)
        self.gateways = [f"http://127.0.0.1:{port}" for name, port in self.ports.items() if name.startswith("gateway")]
        self.gateway = self.gateways[0]

    def command(self, verb: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pont_shared.operations.stack", verb], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=240)

    def pid(self, name: str) -> int:
        found = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c",
                                str(self.run_dir / "supervisord.conf"), "pid", name],
                               capture_output=True, text=True, timeout=60).stdout.strip()
        return int(found) if found.isdigit() else 0

    def ready(self, name: str) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.ports[name]}/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def all_ready(self) -> bool:
        return all(self.ready(name) for name in self.ports)

    def dead_letters(self) -> dict[str, int]:
        """{queue: messages} of every dead-letter queue (`<service>.dead-letters`) that holds any."""
        listed = self.broker.ctl("list_queues", "-p", self.vhost, "name", "messages", "--no-table-headers").stdout
        counts = {name: int(count) for name, count in (line.split("\t") for line in listed.splitlines() if line)}
        return {name: count for name, count in counts.items() if name.endswith(".dead-letters") and count}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.run_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def running_stack(broker: Broker | Cluster, postgres: Postgres, **options):
    """A started `Stack(broker, postgres, ..., **options)`, stopped after."""
    with tempfile.TemporaryDirectory(prefix="pont-fault-run-") as run_dir:
        stack = Stack(broker, postgres, run_dir, secret="fault-suite-" + uuid.uuid4().hex, **options)
        started = stack.command("start")
        try:
            assert started.returncode == 0, started.stdout + started.stderr
            yield stack
        finally:
            stack.command("stop")


@pytest.fixture(scope="module")
def stack(fault_broker, fault_postgres):
    with running_stack(fault_broker, fault_postgres) as stack:
        yield stack
