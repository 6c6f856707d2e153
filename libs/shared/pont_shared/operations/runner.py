"""Run one Pont service as its own process: `python -m pont_shared.operations.runner MODULE:CLASS`.

Options: `--name` (the service name, for services run once per organisation) and
`--org`/`--port`. SIGTERM and SIGINT stop gracefully: entrypoints stop taking work,
in-flight workers finish and acknowledge, then the process exits 0. If the service's
container dies (nameko kills it when an extension or a managed thread fails), the process
exits 1 rather than living on with nothing in it, so its supervisor starts it again. Outside
`PONT_ENV=development` a default or short secret makes it refuse to start (exit 2, naming the variable).
"""
from __future__ import annotations

import eventlet

eventlet.monkey_patch()  # noqa: E402 - must precede every other import

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import structlog  # noqa: E402
from eventlet.event import Event  # noqa: E402
from nameko.runners import ServiceRunner  # noqa: E402

from pont_shared.config import Settings, UnsafeConfiguration  # noqa: E402
from pont_shared.logs import configure_logging  # noqa: E402

log = structlog.get_logger(__name__)


def load_service(spec: str, name: str | None = None):
    module_name, class_name = spec.split(":")
    service_cls = getattr(importlib.import_module(module_name), class_name)
    if name and name != service_cls.name:
        service_cls = type(service_cls.__name__, (service_cls,), {"name": name})
    return service_cls


def settle_collector() -> None:
    """Once a service has started: keep Python's cyclic garbage collector out of its way.

    What start-up built (modules, classes, the container) lives as long as the process, so it
    is frozen out of every later full collection; and a young collection waits for 10,000
    new container objects rather than 700, since one cohort's records and events are
    thousands. Measured in `make bench-transitions`: with the defaults the collector took
    4.1 s of the transitions process's 41.9 s of CPU (36,000 pupils); frozen, 2.1 s of 41.4;
    at 12,000 pupils, frozen 0.75 s of 14.6, frozen and at 10,000 0.33 s of 14.2.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="MODULE:CLASS of the nameko service")
    parser.add_argument("--name", help="service name (default: the class's)")
    parser.add_argument("--org", help="organisation id, for services run once per organisation")
    parser.add_argument("--port", type=int, help="HTTP port for /health, /ready, /metrics")
    args = parser.parse_args(argv)

    service_cls = load_service(args.service, args.name)
    settings = Settings.from_env(service_cls.name, http_port=args.port)
    configure_logging(service_cls.name, settings.log_level)
    try:
        settings.check_secrets()
    except UnsafeConfiguration as exc:  # the message names the variable, never its value
        log.error("service.refused", reason=str(exc))
        print(f"{service_cls.name}: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
    # service-specific tunables (timer intervals, periods) reach the container config as-is
    config = {**{k: v for k, v in os.environ.items() if k.startswith("PONT_")}, **settings.nameko_config()}
    if args.org:
        config["org"] = args.org

    runner = ServiceRunner(config)
    runner.add_service(service_cls)
    stopping = Event()

    def _stop(signum, _frame):
        if not stopping.ready():
            stopping.send(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _watch():
        """Until the container stops: unless we asked it to (a signal), it died."""
        try:
            runner.wait()  # raises what killed the container, if anything did
        except Exception as exc:
            log.error("service.died", exc_info=exc)
        if not stopping.ready():
            stopping.send(None)

    runner.start()
    eventlet.spawn(_watch)
    settle_collector()
    log.info("service.started", service=service_cls.name, port=settings.http_port)
    signum = stopping.wait()
    if signum is None:
        sys.exit(1)
    log.info("service.stopping", signal=signum)
    runner.stop()
    log.info("service.stopped")


if __name__ == "__main__":
    main()
