"""Settings, read once from the environment.

Every variable has a documented development default (README, "Configuration"), so a
newcomer runs Pont with only a broker. Handlers never read the environment: they are
handed a `Settings` (or the nameko config built from it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pont_shared.messaging.broker import HEARTBEAT_SECONDS, kombu_ssl_options

DEV_JWT_SECRET = "pont-development-secret-change-me"
DEV_CHILD_REF_SECRET = "pont-development-child-ref-key"

SERVICE_PORTS = {
    "gateway": 8000,
    "consent": 8101,
    "referrals": 8102,
    "bookings": 8103,
    "transitions": 8104,
}
AGENCY_LINK_BASE_PORT = 8110
DEFAULT_AGENCIES = (
    "school:6612001,school:6614002,health:cardiff-vale,social_care:cardiff,youth_work:cardiff"
)


def _float_list(raw: str) -> tuple[float, ...]:
    return tuple(float(part) for part in raw.split(",") if part.strip())


def parse_school_holidays(raw: str) -> frozenset[date]:
    """`2026-12-21..2027-01-01,2027-02-15` → every date in those ranges (ends included)."""
    days: set[date] = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        first, _, last = part.partition("..")
        try:
            start, end = date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip())
        except ValueError as exc:
            raise ValueError(f"PONT_SCHOOL_HOLIDAYS: {part!r} is not a date or a range YYYY-MM-DD..YYYY-MM-DD") from exc
        if end < start:
            raise ValueError(f"PONT_SCHOOL_HOLIDAYS: {part!r} ends before it starts")
        days.update(start + timedelta(days=n) for n in range((end - start).days + 1))
    return frozenset(days)


@dataclass(frozen=True)
class Settings:
    """Everything a Pont process is configured with."""

    service: str
    amqp_uri: str
    database_url: str
    http_port: int
    jwt_secret: str
    child_ref_secret: str
    retry_delays: tuple[float, ...]
    outbox_batch_size: int
    outbox_poll_seconds: float
    max_workers: int
    log_level: str
    bind_host: str = "127.0.0.1"
    agencies: tuple[str, ...] = field(default=())
    school_holidays: frozenset[date] = field(default=frozenset())

    @classmethod
    def from_env(cls, service: str, env: dict[str, str] | None = None, *, http_port: int | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        key = safe_name(service).upper()
        data_dir = Path(env.get("PONT_DATA_DIR", "data"))
        default_db = f"sqlite:///{data_dir / (safe_name(service) + '.db')}"
        if http_port is None:
            http_port = int(env.get(f"PONT_{key}_PORT", SERVICE_PORTS.get(service, 0)))
        return cls(
            service=service,
            amqp_uri=env.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"),
            database_url=env.get(f"PONT_{key}_DATABASE_URL", default_db),
            http_port=http_port,
            jwt_secret=env.get("PONT_JWT_SECRET", DEV_JWT_SECRET),
            child_ref_secret=env.get("PONT_CHILD_REF_SECRET", DEV_CHILD_REF_SECRET),
            retry_delays=_float_list(env.get("PONT_RETRY_DELAYS", "0.5,1,2,4,8")),
            outbox_batch_size=int(env.get("PONT_OUTBOX_BATCH", "500")),
            outbox_poll_seconds=float(env.get("PONT_OUTBOX_POLL_SECONDS", "0.5")),
            max_workers=int(env.get("PONT_MAX_WORKERS", "20")),
            log_level=env.get("PONT_LOG_LEVEL", "INFO"),
            bind_host=env.get("PONT_BIND_HOST", "127.0.0.1"),
            agencies=tuple(a.strip() for a in env.get("PONT_AGENCIES", DEFAULT_AGENCIES).split(",") if a.strip()),
            school_holidays=parse_school_holidays(env.get("PONT_SCHOOL_HOLIDAYS", "")),
        )

    def nameko_config(self) -> dict:
        """The nameko container config: AMQP (TLS verified for `amqps://`), web server and Pont's own keys."""
        config = {
            "AMQP_URI": self.amqp_uri,
            "WEB_SERVER_ADDRESS": f"{self.bind_host}:{self.http_port}",
            "max_workers": self.max_workers,
            "HEARTBEAT": HEARTBEAT_SECONDS,
            "PONT_SETTINGS": self,
        }
        tls = kombu_ssl_options(self.amqp_uri)
        if tls is not None:
            config["AMQP_SSL"] = tls
        return config


def safe_name(name: str) -> str:
    """An organisation id or service name as a file/queue-safe token."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)
