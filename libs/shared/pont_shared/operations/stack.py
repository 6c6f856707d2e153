"""`make start` / `make stop`: every Pont service as its own process, kept running by supervisord.

Starts each service under `services/` (and one agency_link per organisation in
`PONT_AGENCIES`) with `python -m pont_shared.operations.runner` under supervisord, waits until each
answers `/ready`, and prints the URLs. `PONT_REPLICAS=N` runs N copies of each (`replicated`).
A service that exits (a crash, or its container dying) is started again by supervisord, with a
growing pause; in production that job is Kubernetes'. Logs go to `.run/<service>.log`;
`.run/supervisord.conf` is the generated configuration (`.venv/bin/supervisorctl -c
.run/supervisord.conf status` shows each process).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pont_shared.config import AGENCY_LINK_BASE_PORT, SERVICE_PORTS, Settings, UnsafeConfiguration, safe_name
from pont_shared.messaging.broker import BROKER_ERRORS, parse_brokers
from pont_shared.operations import broker_access, queues
from pont_shared.operations.ops import broker_reachable

ROOT = Path(os.environ.get("PONT_ROOT", Path.cwd()))
RUN_DIR = Path(os.environ.get("PONT_RUN_DIR", ROOT / ".run"))
CONFIG = RUN_DIR / "supervisord.conf"
BIN = Path(sys.executable).parent

SERVICE_CLASSES = {
    "consent": "consent.service:ConsentService",
    "referrals": "referrals.service:ReferralsService",
    "bookings": "bookings.service:BookingsService",
    "transitions": "transitions.service:TransitionsService",
    "gateway": "gateway.service:GatewayService",
    "web": "web.service:WebService",
}


def planned(settings: Settings) -> list[tuple[str, list[str], int]]:
    """(name, runner arguments, port) of every process to start, in start order."""
    present = {p.name for p in (ROOT / "services").iterdir() if p.is_dir()}
    plan = []
    if "agency_link" in present:
        for index, org in enumerate(settings.agencies):
            name = f"agency_link_{safe_name(org)}"
            port = int(os.environ.get("PONT_AGENCY_LINK_BASE_PORT", AGENCY_LINK_BASE_PORT)) + index
            plan.append((name, ["agency_link.service:AgencyLinkService", "--name", name, "--org", org,
                                "--port", str(port)], port))
    for name, spec in SERVICE_CLASSES.items():
        if name in present:
            port = int(os.environ.get(f"PONT_{name.upper()}_PORT", SERVICE_PORTS[name]))
            plan.append((name, [spec, "--port", str(port)], port))
    return plan


def replicated(plan: list[tuple[str, list[str], int]], replicas: int,
               port_step: int) -> list[tuple[str, str, list[str], int]]:
    """(process, service, runner arguments, port) of `replicas` copies of each planned service.

    The first copy keeps the service's name and port; copy k (from 2) is `<name>-k` on the port
    `(k - 1) * port_step` above. Only the port differs: every copy runs under the service's own
    name, so copies consume the same queues (competing consumers) and use the same database."""
    processes = []
    for name, args, port in plan:
        for k in range(1, replicas + 1):
            copy_port = port + (k - 1) * port_step
            copy_args = [*args[:-1], str(copy_port)]   # a plan's arguments end with `--port N`
            processes.append((name if k == 1 else f"{name}-{k}", name, copy_args, copy_port))
    return processes


def replica_settings() -> tuple[int, int]:
    """`PONT_REPLICAS` (copies of each service, 1 unless set) and `PONT_REPLICA_PORT_STEP`."""
    replicas = int(os.environ.get("PONT_REPLICAS", "1"))
    if replicas < 1:
        raise ValueError("PONT_REPLICAS must be 1 or more")
    return replicas, int(os.environ.get("PONT_REPLICA_PORT_STEP", "1000"))


def mail_sink() -> tuple[str, int] | None:
    """Development only, when no `PONT_SMTP_URL` is set: a local SMTP sink (aiosmtpd) on
    `PONT_SMTP_SINK_PORT` (1025), keeping the family notices it receives in `.run/mail` (a Maildir)."""
    if os.environ.get("PONT_ENV") != "development" or os.environ.get("PONT_SMTP_URL"):
        return None
    port = int(os.environ.get("PONT_SMTP_SINK_PORT", "1025"))
    command = " ".join([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                        "-c", "aiosmtpd.handlers.Mailbox", str(RUN_DIR / "mail")])
    return command, port


def supervisor_config(plan: list[tuple[str, str, list[str], int]], environment: dict[str, str] | None = None,
                      sink: str | None = None) -> str:
    """supervisord's configuration: one program per process (see `replicated`), restarted whenever it exits.

    `startsecs` is how long a process must live to count as started; one that exits sooner
    is tried again (after 1 s, 2 s, 3 s, ...) up to `startretries` times, so a service that
    cannot start while the broker or its database is down keeps trying until they are back.
    """
    sections = [
        f"[unix_http_server]\nfile={RUN_DIR / 'supervisor.sock'}\n",
        f"[supervisord]\nlogfile={RUN_DIR / 'supervisord.log'}\npidfile={RUN_DIR / 'supervisord.pid'}\n"
        f"directory={ROOT}\n",
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{RUN_DIR / 'supervisor.sock'}\n",
    ]
    for name, service, args, _port in plan:
        command = " ".join([sys.executable, "-m", "pont_shared.operations.runner", *args])
        # the service's own broker user (PONT_<SERVICE>_AMQP_URI), if one was provisioned
        variable = f"PONT_{safe_name(service).upper()}_AMQP_URI"
        env = f'environment={variable}="{environment[variable].replace("%", "%%")}"\n' \
            if environment and variable in environment else ""
        sections.append(
            f"[program:{name}]\ncommand={command}\ndirectory={ROOT}\n{env}autorestart=true\nstartsecs=3\n"
            f"startretries=1000\nstopsignal=TERM\nstopwaitsecs=30\nkillasgroup=true\nredirect_stderr=true\n"
            f"stdout_logfile={RUN_DIR / f'{name}.log'}\nstdout_logfile_maxbytes=50MB\n")
    if sink:
        sections.append(f"[program:mail-sink]\ncommand={sink}\ndirectory={ROOT}\nautorestart=true\n"
                        f"redirect_stderr=true\nstdout_logfile={RUN_DIR / 'mail-sink.log'}\n")
    return "\n".join(sections)


def ctl(*args: str) -> subprocess.CompletedProcess:
    """Run `supervisorctl` against this stack's supervisord."""
    return subprocess.run([str(BIN / "supervisorctl"), "-c", str(CONFIG), *args],
                          capture_output=True, text=True, timeout=60)


def pid(name: str) -> int:
    """The process id of a running service (0 if it is not running)."""
    found = ctl("pid", name).stdout.strip()
    return int(found) if found.isdigit() else 0


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False


def _supervisord_running() -> bool:
    return CONFIG.exists() and ctl("pid").stdout.strip().isdigit()


def start() -> int:
    # a developer's stack: the development secrets are accepted unless the caller says otherwise
    os.environ.setdefault("PONT_ENV", "development")
    settings = Settings.from_env("gateway")
    try:  # each process checks too; refusing here saves supervisord restarting them for ever
        settings.check_secrets()
    except UnsafeConfiguration as exc:
        print(f"Not starting Pont: {exc}", file=sys.stderr)
        return 1
    if not broker_reachable(settings.amqp_uri):
        print(f"RabbitMQ is not reachable at {settings.amqp_uri.split('@')[-1]}.\n"
              "Start it with:  rabbitmq-server -detached   (or set AMQP_URI)", file=sys.stderr)
        return 1
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    try:
        replicas, port_step = replica_settings()
    except ValueError as exc:
        print(f"Not starting Pont: {exc}", file=sys.stderr)
        return 1
    plan = replicated(planned(settings), replicas, port_step)
    ports = {name: port for name, _service, _args, port in plan}
    if "gateway" in ports:  # the web pages are a client of this stack's own gateway
        os.environ.setdefault("PONT_GATEWAY_URL", f"http://127.0.0.1:{ports['gateway']}")
    sink = mail_sink()
    if sink:  # the services started below inherit it
        os.environ["PONT_SMTP_URL"] = f"smtp://127.0.0.1:{sink[1]}"
    if _supervisord_running():
        print("Pont is already running under supervisord; checking it is ready")
    else:
        # a user per service and organisation, none an administrator (pont_shared.operations.broker_access)
        uris = broker_access.provision(settings, RUN_DIR)
        migrate_classic_queues(settings)
        CONFIG.touch(mode=0o600)  # it holds those users' passwords
        CONFIG.write_text(supervisor_config(plan, uris, sink[0] if sink else None))
        subprocess.run([str(BIN / "supervisord"), "-c", str(CONFIG)], check=True, timeout=60)
    deadline = time.monotonic() + 120
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            if ready(port):
                del waiting[name]
        time.sleep(0.2)
    if waiting:
        for name in waiting:
            log_path = RUN_DIR / f"{name}.log"
            tail = log_path.read_text(errors="replace").splitlines()[-15:] if log_path.exists() else []
            print(f"{name} is not ready; see {log_path}, which ends:", *tail, sep="\n  ", file=sys.stderr)
        stop()
        return 1
    print("Pont is running (under supervisord: a service that exits is started again):")
    for name, port in ports.items():
        print(f"  {name:<40} http://127.0.0.1:{port}  (/health /ready /metrics)")
    gateway_port = ports.get("gateway")
    if gateway_port:
        print(f"\nAPI: http://127.0.0.1:{gateway_port}/api/v1  OpenAPI: http://127.0.0.1:{gateway_port}/openapi.json")
    if "web" in ports:
        print(f"Pages (Welsh and English): http://127.0.0.1:{ports['web']}/")
    if sink:
        print(f"Family notices (email) go to a local sink: smtp://127.0.0.1:{sink[1]}, kept in {RUN_DIR / 'mail'}")
    print(f"Processes: {BIN / 'supervisorctl'} -c {CONFIG} status\nStop with: make stop")
    return 0


def migrate_classic_queues(settings: Settings) -> None:
    """Before the services declare their queues: an older Pont's classic ones made quorum queues,
    keeping their messages (pont_shared.operations.queues); needs rabbitmqctl, as provisioning does."""
    try:
        moved = queues.migrate(settings.amqp_uri, parse_brokers(settings.amqp_uri)[0].virtual_host,
                               list(broker_access.users(settings)))
    except (OSError, subprocess.SubprocessError, RuntimeError, *BROKER_ERRORS) as exc:
        print(f"classic queues not checked ({type(exc).__name__}: {exc}): see infra/README.md", file=sys.stderr)
        return
    if moved:
        print(f"{len(moved)} classic queue(s) of an older Pont are now quorum queues "
              f"(messages kept: {sum(moved.values())})")


def stop() -> int:
    """Stop every service gracefully (SIGTERM: in-flight work finishes and is acknowledged)."""
    if not _supervisord_running():
        return 0
    supervisord = int(ctl("pid").stdout.strip())
    ctl("shutdown")
    deadline = time.monotonic() + 60
    while _alive(supervisord) and time.monotonic() < deadline:
        time.sleep(0.1)
    print("Pont stopped.")
    return 0


def _alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as gone
        with open(f"/proc/{process_id}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop}[command]())
