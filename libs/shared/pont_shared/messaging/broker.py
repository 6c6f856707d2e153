"""Connections to RabbitMQ, from the one `AMQP_URI` that nameko and kombu read too.

`AMQP_URI` is one URI or a `;`-separated failover list (kombu's form), tried in order:
`amqp://u:p@rabbit-1:5672/;amqp://u:p@rabbit-2:5672/`. `amqps://` is TLS with the broker's
certificate and host name verified against the system's trust store (OpenSSL's
`SSL_CERT_FILE` names another CA bundle, for py-amqp and kombu alike). A list may not mix
`amqp` and `amqps`, so that failing over never means falling back to plain text. With TLS and
several hosts, each broker's certificate must name every host of the list: kombu (nameko's
connections) fills in the name to check once, from the first host it tries, and checks every
later broker against it; `connect_amqp` checks each broker's own name. Both are tested through
a TLS proxy in front of the real broker (tests/integration/test_broker.py).
The path is the virtual host as kombu reads it: none, or `//`, is `/`.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import amqp
import structlog
from kombu.utils.url import parse_url

log = structlog.get_logger(__name__)

BROKER_ERRORS = (OSError, amqp.exceptions.AMQPError, amqp.exceptions.ConnectionError)
HEARTBEAT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 5
_TLS_SCHEMES = {"amqps": True, "pyamqps": True, "amqp": False, "pyamqp": False}


@dataclass(frozen=True)
class Broker:
    """One broker of an `AMQP_URI`."""

    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    virtual_host: str
    tls: bool

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def ssl_options(self) -> dict | bool:
        """py-amqp's `ssl` argument: a context from `ssl.create_default_context()` (chain verified),
        with the host name checked against this broker's."""
        if not self.tls:
            return False
        return {"context": {"check_hostname": True}, "server_hostname": self.host}


def parse_brokers(uri: str) -> list[Broker]:
    """The brokers of an `AMQP_URI`, in the order to try them."""
    brokers = []
    for one in (part.strip() for part in uri.split(";")):
        if not one:
            continue
        parts = parse_url(one)
        if parts["transport"] not in _TLS_SCHEMES:
            raise ValueError(f"AMQP_URI: {parts['transport']!r} is not amqp:// or amqps://")
        tls = _TLS_SCHEMES[parts["transport"]]
        brokers.append(Broker(
            host=parts["hostname"] or "127.0.0.1",
            port=parts["port"] or (5671 if tls else 5672),
            userid=parts["userid"] or "guest",
            password=parts["password"] or "guest",
            virtual_host=parts["virtual_host"] or "/",
            tls=tls,
        ))
    if not brokers:
        raise ValueError("AMQP_URI names no broker")
    if len({broker.tls for broker in brokers}) > 1:
        raise ValueError("AMQP_URI mixes amqp:// and amqps://: every broker of a failover list must use TLS, or none")
    return brokers


def broker_user(uri: str) -> str:
    """The user `uri` connects as: the `user_id` its publishes carry (RabbitMQ refuses any other)."""
    return parse_brokers(uri)[0].userid


def uses_tls(uri: str) -> bool:
    return parse_brokers(uri)[0].tls


def kombu_ssl_options(uri: str) -> dict | None:
    """kombu's `ssl` option (nameko's `AMQP_SSL`) for `uri`: certificate required, and checked
    against the host name of the broker kombu connects to (`server_hostname` None: kombu fills it
    in on the first connection); None for plain `amqp://`."""
    if not uses_tls(uri):
        return None
    return {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}


def connect_amqp(uri: str, *, heartbeat: int = HEARTBEAT_SECONDS,
                 connection_class: type[amqp.Connection] = amqp.Connection, **options) -> amqp.Connection:
    """A py-amqp connection to the first broker of `uri` that answers, with `heartbeat` negotiated;
    `options` go to `connection_class`. Raises the last broker's error if none answers."""
    error: Exception | None = None
    for broker in parse_brokers(uri):
        conn = connection_class(
            host=broker.address, userid=broker.userid, password=broker.password,
            virtual_host=broker.virtual_host, ssl=broker.ssl_options(), heartbeat=heartbeat,
            connect_timeout=CONNECT_TIMEOUT_SECONDS, **options,
        )
        try:
            conn.connect()
            return conn
        except BROKER_ERRORS as exc:
            log.warning("amqp.broker_unavailable", broker=broker.address, error=type(exc).__name__)
            conn.collect()
            error = exc
    raise error


class TracksConsuming:
    """Mixed into a nameko queue consumer: `consuming` says whether its consumers are attached.

    kombu's consumer loop calls `on_consume_ready` once the consumers are attached, after every
    (re)connection, and `on_connection_error` for each attempt that cannot reach the broker; a
    service's `/ready` reports the two (pont_shared.operations.ops).
    """

    consuming = False

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        self.consuming = True

    def on_connection_error(self, exc, interval):
        self.consuming = False
        super().on_connection_error(exc, interval)
