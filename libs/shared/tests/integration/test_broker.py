"""Connecting from an `AMQP_URI` over real sockets: failover, heartbeats, and TLS that refuses
what it cannot verify (a local TLS server with a certificate made for the test)."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import eventlet
import kombu
import pytest

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


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for `localhost` (and no other name), and its key."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests make their certificate with the openssl command (Debian package openssl)"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
                    "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


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
