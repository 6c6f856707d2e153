"""The benchmarks' services, each its own process as `make start` runs them, and the CPU a process has used."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from pont_shared.config import safe_name
from pont_shared.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]

# the services' code imports nameko, which warns on import that eventlet is deprecated: not news here
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


def start_services(stack: ExitStack, processes: list[tuple[str, str, list[str], int]], env: dict, logs: Path,
                   databases: dict[str, str]) -> dict[str, int]:
    """Start each (process, service, runner arguments, port) of `processes` — `stack.replicated`'s shape —
    with `env` and its service's database (`databases[service]`, if it has one), its stderr in
    `logs/<process>.log`; wait until every one answers `/ready`; their pids by process name.
    Each is stopped gracefully (SIGTERM) when `stack` closes."""
    started = {}
    for name, service, args, port in processes:
        environment = dict(env)
        if service in databases:
            environment[f"PONT_{safe_name(service).upper()}_DATABASE_URL"] = databases[service]
        started[name] = (stack.enter_context(runner(args, environment, logs / f"{name}.log")), port)

    def all_ready() -> bool:
        for name, (process, _) in started.items():
            if process.poll() is not None:
                tail = (logs / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n  " + "\n  ".join(tail))
        return all(ready(port) for _, port in started.values())

    wait_until(all_ready, timeout=120, interval=0.2, message="the services did not become ready")
    return {name: process.pid for name, (process, _) in started.items()}


@contextmanager
def runner(args: list[str], env: dict, log_path: Path):
    """`python -m pont_shared.operations.runner *args`; stopped gracefully (SIGTERM) after."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pont_shared.operations.runner", *args], env=env,
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used (Linux `/proc/<pid>/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
