"""`make start` / `make stop`: every Pont service as its own background process.

Starts each service under `services/` (and one agency_link per organisation in
`PONT_AGENCIES`) with `python -m pont_shared.runner`, waits until each answers `/ready`,
and prints the URLs. Logs go to `.run/<service>.log`, pids to `.run/<service>.pid`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .config import AGENCY_LINK_BASE_PORT, SERVICE_PORTS, Settings, safe_name
from .ops import broker_reachable

ROOT = Path(os.environ.get("PONT_ROOT", Path.cwd()))
RUN_DIR = Path(os.environ.get("PONT_RUN_DIR", ROOT / ".run"))

SERVICE_CLASSES = {
    "consent": "consent.service:ConsentService",
    "referrals": "referrals.service:ReferralsService",
    "bookings": "bookings.service:BookingsService",
    "transitions": "transitions.service:TransitionsService",
    "gateway": "gateway.service:GatewayService",
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


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
            return response.status == 200
    except Exception:
        return False


def start() -> int:
    settings = Settings.from_env("gateway")
    if not broker_reachable(settings.amqp_uri):
        print(f"RabbitMQ is not reachable at {settings.amqp_uri.split('@')[-1]}.\n"
              "Start it with:  rabbitmq-server -detached   (or set AMQP_URI)", file=sys.stderr)
        return 1
    RUN_DIR.mkdir(exist_ok=True)
    plan = planned(settings)
    for name, args, _port in plan:
        pid_file = RUN_DIR / f"{name}.pid"
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            print(f"{name} already running (pid {pid_file.read_text().strip()})")
            continue
        log = open(RUN_DIR / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "pont_shared.runner", *args],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + 90
    waiting = {name: port for name, _args, port in plan}
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            if ready(port):
                del waiting[name]
            elif not _alive(int((RUN_DIR / f"{name}.pid").read_text())):
                log_path = RUN_DIR / f"{name}.log"
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                print(f"{name} exited; see {log_path}, which ends:", *tail, sep="\n  ", file=sys.stderr)
                stop()
                return 1
        time.sleep(0.2)
    if waiting:
        print(f"not ready in time: {', '.join(waiting)}; logs in {RUN_DIR}", file=sys.stderr)
        return 1
    print("Pont is running:")
    for name, _args, port in plan:
        print(f"  {name:<40} http://127.0.0.1:{port}  (/health /ready /metrics)")
    gateway_port = dict((n, p) for n, _a, p in plan).get("gateway")
    if gateway_port:
        print(f"\nAPI: http://127.0.0.1:{gateway_port}/api/v1  OpenAPI: http://127.0.0.1:{gateway_port}/openapi.json")
    print("Stop with: make stop")
    return 0


def stop() -> int:
    if not RUN_DIR.exists():
        return 0
    pids = {}
    for pid_file in RUN_DIR.glob("*.pid"):
        pid = int(pid_file.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)  # graceful: in-flight work finishes and is acknowledged
            pids[pid_file] = pid
        else:
            pid_file.unlink()
    deadline = time.monotonic() + 20
    while pids and time.monotonic() < deadline:
        for pid_file, pid in list(pids.items()):
            if not _alive(pid):
                pid_file.unlink(missing_ok=True)
                del pids[pid_file]
        time.sleep(0.1)
    for pid_file, pid in pids.items():
        os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    print("Pont stopped.")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    sys.exit({"start": start, "stop": stop}[command]())
