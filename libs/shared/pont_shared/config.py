"""Settings, read once from the environment.

Every variable has a documented development default (README, "Configuration"), so a
newcomer runs Pont with only a broker (`make start` sets `PONT_ENV=development`); outside
development the secrets' defaults are refused (`Settings.check_secrets`, run by the runner).
Handlers never read the environment: they are handed a `Settings` (or the nameko config built
from it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pont_shared.contract.caller import DEV_CALLER_SIGNING_KEY, DEV_CALLER_VERIFY_KEY
from pont_shared.messaging.broker import HEARTBEAT_SECONDS, kombu_ssl_options, parse_brokers

DEV_JWT_SECRET = "pont-development-secret-change-me"
DEV_CHILD_REF_SECRET = "pont-development-child-ref-key"
DEV_LEDGER_KEY = "pont-development-ledger-key"
DEV_BROKER_PASSWORD = "pont-broker-dev"  # docker-compose's default for every service's broker user

ENVIRONMENTS = ("development", "production")
MIN_SECRET_BYTES = 32
# (environment variable, Settings attribute, development default, the services that hold it or None
# for every process). Outside PONT_ENV=development none may be its development default or shorter
# than MIN_SECRET_BYTES.
SECRETS: list[tuple[str, str, str, frozenset[str] | None]] = [
    ("PONT_JWT_SECRET", "jwt_secret", DEV_JWT_SECRET, None),
    ("PONT_CHILD_REF_SECRET", "child_ref_secret", DEV_CHILD_REF_SECRET, None),
    ("PONT_LEDGER_KEY", "ledger_key", DEV_LEDGER_KEY, None),
    ("PONT_CALLER_SIGNING_KEY", "caller_signing_key", DEV_CALLER_SIGNING_KEY, frozenset({"gateway"})),
    # public, but its development value's private half is in this repository: anyone could sign with it
    ("PONT_CALLER_VERIFY_KEY", "caller_verify_key", DEV_CALLER_VERIFY_KEY, None),
]


class UnsafeConfiguration(Exception):
    """A process outside development configured with a development or short secret (names the variable)."""

SERVICE_PORTS = {
    "gateway": 8000,
    "consent": 8101,
    "referrals": 8102,
    "bookings": 8103,
    "transitions": 8104,
    "web": 8080,
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
class OidcSettings:
    """An identity provider whose RS256/ES256 tokens the gateway accepts (keys from its JWKS)."""

    jwks_url: str
    issuer: str
    audience: str
    roles_claim: str = "roles"
    org_claim: str = "org"
    refresh_cooldown_seconds: float = 30.0  # an unknown kid refetches the JWKS at most this often

    @classmethod
    def from_env(cls, env: dict[str, str]) -> OidcSettings | None:
        if not env.get("PONT_OIDC_JWKS_URL"):
            return None
        missing = [name for name in ("PONT_OIDC_ISSUER", "PONT_OIDC_AUDIENCE") if not env.get(name)]
        if missing:
            raise ValueError(f"PONT_OIDC_JWKS_URL is set, so {' and '.join(missing)} must be too")
        return cls(jwks_url=env["PONT_OIDC_JWKS_URL"], issuer=env["PONT_OIDC_ISSUER"],
                   audience=env["PONT_OIDC_AUDIENCE"], roles_claim=env.get("PONT_OIDC_ROLES_CLAIM", "roles"),
                   org_claim=env.get("PONT_OIDC_ORG_CLAIM", "org"),
                   refresh_cooldown_seconds=float(env.get("PONT_OIDC_REFRESH_COOLDOWN_SECONDS", "30")))


@dataclass(frozen=True)
class OidcClient:
    """The web pages' sign-in at the organisation's identity provider (OpenID Connect,
    authorization code with PKCE): its issuer (discovery at `<issuer>/.well-known/openid-configuration`),
    Pont's client there, and the callback URL registered with it (`https://…/sign-in/callback`).
    Roles and organisation are read from the ID token's claims named as for the gateway."""

    issuer: str
    client_id: str
    redirect_url: str
    client_secret: str | None = field(default=None, repr=False)   # none for a public client (PKCE alone)
    scope: str = "openid profile"
    roles_claim: str = "roles"
    org_claim: str = "org"

    @classmethod
    def from_env(cls, env: dict[str, str]) -> OidcClient | None:
        if not env.get("PONT_OIDC_CLIENT_ID"):
            return None
        missing = [name for name in ("PONT_OIDC_ISSUER", "PONT_OIDC_REDIRECT_URL") if not env.get(name)]
        if missing:
            raise ValueError(f"PONT_OIDC_CLIENT_ID is set, so {' and '.join(missing)} must be too")
        return cls(issuer=env["PONT_OIDC_ISSUER"].rstrip("/"), client_id=env["PONT_OIDC_CLIENT_ID"],
                   redirect_url=env["PONT_OIDC_REDIRECT_URL"], client_secret=env.get("PONT_OIDC_CLIENT_SECRET"),
                   scope=env.get("PONT_OIDC_SCOPE", "openid profile"),
                   roles_claim=env.get("PONT_OIDC_ROLES_CLAIM", "roles"),
                   org_claim=env.get("PONT_OIDC_ORG_CLAIM", "org"))


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
    # the owner role's URL, for migrations at start (PostgreSQL roles: pont_shared.operations.roles); "" = database_url
    migrate_database_url: str = ""
    # false: the service does not migrate at start; `pont-migrate` (a Kubernetes Job, say) does it first
    migrate_at_start: bool = True
    ledger_key: str = DEV_LEDGER_KEY  # HMAC key of the consent ledger chain; lives outside the database
    ledger_previous_keys: tuple[str, ...] = ()  # the keys it replaced, oldest first: their entries still verify
    # the gateway's Ed25519 key for caller assertions (pont_shared.contract.caller); deployments give it
    # to the gateway alone, and only the gateway uses it (or has it checked: SECRETS)
    caller_signing_key: str = DEV_CALLER_SIGNING_KEY
    caller_verify_key: str = DEV_CALLER_VERIFY_KEY  # its public half, with which every service verifies them
    ledger_anchor_seconds: float = 300.0
    ledger_verify_seconds: float = 3600.0
    overdue_check_seconds: float = 60.0
    environment: str = "production"
    max_body_bytes: int = 25 * 1024 * 1024  # the gateway's request body limit (a CTF import is up to 20 MB)
    oidc: OidcSettings | None = None  # an identity provider's tokens, besides HS256 with jwt_secret
    gateway_url: str = "http://127.0.0.1:8000"  # where the web pages reach the public API
    oidc_client: OidcClient | None = None  # the web pages' sign-in at an identity provider
    outbox_retention_hours: float = 24.0  # a published outbox row (its body may carry a disclosure) is then deleted
    # where family notices are sent: smtp://host:port (development and tests: a local sink) or smtps://user:pass@host;
    # "" keeps them queued, unsent
    smtp_url: str = ""
    notices_from: str = "Pont <hysbysiadau@pont.invalid>"

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
            # each service's own broker user (pont_shared.operations.broker_access), else the shared URI
            amqp_uri=env.get(f"PONT_{key}_AMQP_URI") or env.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"),
            database_url=env.get(f"PONT_{key}_DATABASE_URL", default_db),
            http_port=http_port,
            jwt_secret=env.get("PONT_JWT_SECRET", DEV_JWT_SECRET),
            child_ref_secret=env.get("PONT_CHILD_REF_SECRET", DEV_CHILD_REF_SECRET),
            retry_delays=_float_list(env.get("PONT_RETRY_DELAYS", "0.5,1,2,4,8")),
            outbox_batch_size=int(env.get("PONT_OUTBOX_BATCH", "500")),
            outbox_poll_seconds=float(env.get("PONT_OUTBOX_POLL_SECONDS", "0.5")),
            outbox_retention_hours=float(env.get("PONT_OUTBOX_RETENTION_HOURS", "24")),
            smtp_url=env.get("PONT_SMTP_URL", ""),
            notices_from=env.get("PONT_NOTICES_FROM", "Pont <hysbysiadau@pont.invalid>"),
            max_workers=int(env.get("PONT_MAX_WORKERS", "20")),
            log_level=env.get("PONT_LOG_LEVEL", "INFO"),
            bind_host=env.get("PONT_BIND_HOST", "127.0.0.1"),
            agencies=tuple(a.strip() for a in env.get("PONT_AGENCIES", DEFAULT_AGENCIES).split(",") if a.strip()),
            school_holidays=parse_school_holidays(env.get("PONT_SCHOOL_HOLIDAYS", "")),
            migrate_database_url=env.get(f"PONT_{key}_MIGRATE_DATABASE_URL", ""),
            migrate_at_start=env.get("PONT_MIGRATE_AT_START", "true").lower() not in ("false", "0", "no"),
            ledger_key=env.get("PONT_LEDGER_KEY", DEV_LEDGER_KEY),
            ledger_previous_keys=tuple(k for k in env.get("PONT_LEDGER_PREVIOUS_KEYS", "").split(",") if k),
            caller_signing_key=env.get("PONT_CALLER_SIGNING_KEY", DEV_CALLER_SIGNING_KEY),
            caller_verify_key=env.get("PONT_CALLER_VERIFY_KEY", DEV_CALLER_VERIFY_KEY),
            ledger_anchor_seconds=float(env.get("PONT_LEDGER_ANCHOR_SECONDS", "300")),
            ledger_verify_seconds=float(env.get("PONT_LEDGER_VERIFY_SECONDS", "3600")),
            overdue_check_seconds=float(env.get("PONT_REFERRALS_OVERDUE_SECONDS", "60")),
            environment=env.get("PONT_ENV", "production"),
            max_body_bytes=int(env.get("PONT_MAX_BODY_BYTES", str(25 * 1024 * 1024))),
            oidc=OidcSettings.from_env(env),
            gateway_url=env.get("PONT_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/"),
            oidc_client=OidcClient.from_env(env),
        )

    def check_secrets(self) -> None:
        """Refuse (`UnsafeConfiguration`) a development or short secret outside `PONT_ENV=development`.

        The message names the variable, never its value.
        """
        if self.environment not in ENVIRONMENTS:
            raise UnsafeConfiguration(f"PONT_ENV must be one of {', '.join(ENVIRONMENTS)}")
        if self.environment == "development":
            return
        for variable, attribute, development_default, holders in SECRETS:
            if holders is not None and self.service not in holders:
                continue
            value = getattr(self, attribute)
            if value == development_default:
                raise UnsafeConfiguration(f"{variable} is the development default; set a secret of its own "
                                          f"(PONT_ENV={self.environment})")
            if len(value.encode()) < MIN_SECRET_BYTES:
                raise UnsafeConfiguration(f"{variable} is shorter than {MIN_SECRET_BYTES} bytes "
                                          f"(PONT_ENV={self.environment})")
        if any(broker.password == DEV_BROKER_PASSWORD for broker in parse_brokers(self.amqp_uri)):
            raise UnsafeConfiguration(f"PONT_{safe_name(self.service).upper()}_AMQP_URI (or AMQP_URI) has the "
                                      f"development broker password; set PONT_BROKER_PASSWORD_<SERVICE> "
                                      f"(PONT_ENV={self.environment})")

    def nameko_config(self) -> dict:
        """The nameko container config: AMQP (TLS verified for `amqps://`), web server and Pont's own keys."""
        config = {
            "AMQP_URI": self.amqp_uri,
            "WEB_SERVER_ADDRESS": f"{self.bind_host}:{self.http_port}",
            "max_workers": self.max_workers,
            "HEARTBEAT": HEARTBEAT_SECONDS,
            "PONT_SETTINGS": self,
            "PONT_LEDGER_ANCHOR_SECONDS": self.ledger_anchor_seconds,
            "PONT_LEDGER_VERIFY_SECONDS": self.ledger_verify_seconds,
            "PONT_REFERRALS_OVERDUE_SECONDS": self.overdue_check_seconds,
        }
        tls = kombu_ssl_options(self.amqp_uri)
        if tls is not None:
            config["AMQP_SSL"] = tls
        return config


def safe_name(name: str) -> str:
    """An organisation id or service name as a file/queue-safe token."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)
