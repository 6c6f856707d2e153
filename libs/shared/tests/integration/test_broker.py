"""Connecting from an `AMQP_URI` over real sockets: failover, heartbeats, TLS that refuses what
it cannot verify (a local TLS server with a certificate made for the test), and AMQP over TLS
to the real broker, failing over, through a TLS proxy in front of it (`TlsProxy`).

This machine's names for 127.0.0.1 stand in for a cluster's brokers: `vm` and `runsc` (see
/etc/hosts). kombu, and so nameko, checks every broker of a failover list against the name of
the first it tried (it fills in `server_hostname` once), so with `amqps://` each broker's
certificate must name every host of the list; py-amqp's connections (the relay, RPC replies)
check each broker's own name."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import uuid

import amqp
import eventlet
import kombu
import pytest
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from pont_shared.config import Settings
from pont_shared.messaging.broker import BROKER_ERRORS, connect_amqp, parse_brokers

pytestmark = pytest.mark.integration
AMQP_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
REFUSING = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens on port 1


class TestFailover:
    def test_a_list_whose_first_broker_refuses_connects_to_the_second(self, broker_url):
        conn = connect_amqp(f"{REFUSING};{broker_url}")
        try:
            channel = conn.channel()

            assert conn.host == parse_brokers(broker_url)[0].address
            assert channel.is_open
        finally:
            conn.close()

    def test_when_no_broker_answers_the_last_ones_error_is_raised(self):
        with pytest.raises(ConnectionRefusedError):
            connect_amqp(f"{REFUSING};amqp://guest:guest@127.0.0.1:2/")

    def test_kombu_and_so_nameko_fail_over_through_the_same_list(self, broker_url):
        with kombu.Connection(f"{REFUSING};{broker_url}") as conn:
            conn.connect()

            assert conn.connected and conn.port == parse_brokers(broker_url)[0].port


def test_the_heartbeat_asked_for_is_negotiated(broker_url):
    conn = connect_amqp(broker_url, heartbeat=7)
    try:
        assert conn.heartbeat == 7
    finally:
        conn.close()


def test_amqps_to_a_plain_text_broker_fails_rather_than_talking_plain_text(broker_url):
    broker = parse_brokers(broker_url)[0]

    with pytest.raises(ssl.SSLError):
        connect_amqp(f"amqps://{broker.userid}:{broker.password}@{broker.address}/")


def make_certificate(folder, *names: str):
    """A self-signed certificate naming `names` (and no other), and its key."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests make their certificate with the openssl command (Debian package openssl)"
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={names[0]}",
                    "-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in names)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for `localhost` (and no other name), and its key."""
    return make_certificate(tmp_path_factory.mktemp("tls"), "localhost")


class TlsServer:
    """Accepts TLS connections with the test's certificate, records the first bytes each client
    sends through TLS (an AMQP client's protocol header), then hangs up."""

    def __init__(self, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self._thread = eventlet.spawn(self._serve)

    def _serve(self):
        while True:
            client, _ = self.listener.accept()
            try:
                with self.context.wrap_socket(client, server_side=True) as tls:
                    self.received.append(tls.recv(len(AMQP_PROTOCOL_HEADER)))
            except OSError:  # the client refused the handshake
                client.close()

    def uri(self, host: str) -> str:
        return f"amqps://guest:guest@{host}:{self.port}/"

    def close(self):
        self._thread.kill()
        self.listener.close()


@pytest.fixture
def tls_server(certificate):
    server = TlsServer(*certificate)
    yield server
    server.close()


@pytest.fixture
def trusting_the_test_ca(certificate, monkeypatch):
    """The test's certificate as the trust store, as `SSL_CERT_FILE` makes it for OpenSSL."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


class TestTlsVerification:
    def test_a_certificate_from_an_unknown_ca_is_refused(self, tls_server):
        with pytest.raises(ssl.SSLCertVerificationError):
            connect_amqp(tls_server.uri("localhost"))

        assert tls_server.received == []

    def test_a_trusted_certificate_for_another_name_is_refused(self, tls_server, trusting_the_test_ca):
        with pytest.raises(ssl.SSLCertVerificationError):
            connect_amqp(tls_server.uri("127.0.0.1"))  # the certificate names only localhost

        assert tls_server.received == []

    def test_a_trusted_certificate_for_the_brokers_name_carries_amqp(self, tls_server, trusting_the_test_ca):
        with pytest.raises(BROKER_ERRORS):  # the test server hangs up after the protocol header
            connect_amqp(tls_server.uri("localhost"))

        assert tls_server.received == [AMQP_PROTOCOL_HEADER]

    def test_nameko_connections_refuse_a_certificate_from_an_unknown_ca(self, tls_server):
        config = Settings.from_env("probe", {"AMQP_URI": tls_server.uri("localhost")}).nameko_config()

        with kombu.Connection(config["AMQP_URI"], ssl=config["AMQP_SSL"]) as conn:
            with pytest.raises(ssl.SSLCertVerificationError):
                conn.connect()

    def test_nameko_connections_refuse_a_trusted_certificate_for_another_name(
        self, tls_server, trusting_the_test_ca
    ):
        config = Settings.from_env("probe", {"AMQP_URI": tls_server.uri("127.0.0.1")}).nameko_config()

        with kombu.Connection(config["AMQP_URI"], ssl=config["AMQP_SSL"]) as conn:
            with pytest.raises(ssl.SSLCertVerificationError):
                conn.connect()


class TlsProxy:
    """A broker behind TLS: accepts TLS with the test's certificate and forwards the bytes both
    ways to the real RabbitMQ (`upstream`), as a TLS listener of the broker itself would."""

    def __init__(self, cert, key, upstream: tuple[str, int]):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._threads = [eventlet.spawn(self._serve)]

    def _serve(self):
        while True:
            client, _ = self.listener.accept()
            try:
                tls = self.context.wrap_socket(client, server_side=True)
            except OSError:  # the client refused the handshake
                client.close()
                continue
            self.connections += 1
            broker = socket.create_connection(self.upstream)
            self._threads += [eventlet.spawn(self._pump, tls, broker), eventlet.spawn(self._pump, broker, tls)]

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except (OSError, EOFError):  # either end hung up
            pass
        finally:
            for end in (source, sink):
                end.close()

    def close(self):
        for thread in self._threads:
            thread.kill()
        self.listener.close()


@pytest.fixture
def tls_broker(tmp_path, broker_url, monkeypatch):
    """The real broker behind TLS as host `vm`, with a certificate naming `vm` and `runsc`,
    trusted through `SSL_CERT_FILE`; yields a function giving the `amqps://` URI for a host name."""
    cert, key = make_certificate(tmp_path, "vm", "runsc")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    broker = parse_brokers(broker_url)[0]
    proxy = TlsProxy(cert, key, (broker.host, broker.port))
    vhost = broker.virtual_host if broker.virtual_host != "/" else ""
    proxy.uri = lambda host, port=proxy.port: f"amqps://{broker.userid}:{broker.password}@{host}:{port}/{vhost}"
    yield proxy
    proxy.close()


def _round_trip(conn) -> bytes:
    """Publish a message to a queue of its own through `conn` and read it back."""
    channel = conn.channel()
    queue, _, _ = channel.queue_declare("", exclusive=True)
    channel.basic_publish(amqp.Message(b"over TLS"), routing_key=queue)
    return wait_for_message(channel, queue).body


def wait_for_message(channel, queue: str, timeout: float = 5.0):
    deadline = eventlet.Timeout(timeout)
    try:
        while (message := channel.basic_get(queue, no_ack=True)) is None:
            eventlet.sleep(0.01)
        return message
    finally:
        deadline.cancel()


class TestAmqpOverTls:
    def test_the_relay_and_reply_connections_carry_amqp_to_the_real_broker(self, tls_broker):
        conn = connect_amqp(tls_broker.uri("vm"))
        try:
            assert _round_trip(conn) == b"over TLS"
            assert tls_broker.connections == 1
        finally:
            conn.close()

    def test_they_fail_over_to_a_tls_broker_and_check_that_brokers_own_name(self, tls_broker):
        dead = f"{tls_broker.uri('runsc', port=1)}"   # nothing listens there: the next broker is tried
        conn = connect_amqp(f"{dead};{tls_broker.uri('vm')}")
        try:
            assert conn.host == f"vm:{tls_broker.port}"
            assert _round_trip(conn) == b"over TLS"
        finally:
            conn.close()

    def test_nameko_fails_over_to_a_tls_broker_and_serves_rpc_through_it(self, tls_broker):
        uri = f"{tls_broker.uri('runsc', port=1)};{tls_broker.uri('vm')}"
        config = Settings.from_env("probe", {"AMQP_URI": uri}).nameko_config()
        name = f"tls_probe_{uuid.uuid4().hex[:8]}"
        service = type("TlsProbe", (), {"name": name, "echo": rpc(lambda self, text: text.upper())})
        container = ServiceContainer(service, {**config, "WEB_SERVER_ADDRESS": "127.0.0.1:0"})
        container.start()
        try:
            with ClusterRpcProxy(config, timeout=10) as cluster:
                assert getattr(cluster, name).echo("over tls") == "OVER TLS"
            assert tls_broker.connections >= 2   # the service's consumer and the caller's, at least
        finally:
            container.stop()
            with kombu.Connection(uri, ssl=config["AMQP_SSL"]) as conn:
                conn.default_channel.queue_delete(f"rpc-{name}")
