"""`AMQP_URI` as Pont reads it: failover lists, virtual hosts, credentials, and TLS that verifies."""
from __future__ import annotations

import ssl

import pytest

from pont_shared.config import Settings
from pont_shared.messaging.broker import parse_brokers


class TestFailoverList:
    def test_brokers_are_tried_in_the_order_written(self):
        brokers = parse_brokers("amqp://u1:p1@rabbit-1:5672/;amqp://u2:p2@rabbit-2:5673/")

        assert [(b.host, b.port, b.userid, b.password) for b in brokers] == [
            ("rabbit-1", 5672, "u1", "p1"), ("rabbit-2", 5673, "u2", "p2")]

    def test_one_uri_is_a_list_of_one(self):
        assert [b.address for b in parse_brokers("amqp://guest:guest@127.0.0.1:5672/")] == ["127.0.0.1:5672"]

    def test_blanks_around_the_separator_are_ignored(self):
        assert len(parse_brokers(" amqp://a/ ; amqp://b/ ;")) == 2

    def test_a_list_that_mixes_tls_and_plain_text_is_refused(self):
        with pytest.raises(ValueError, match="mixes"):
            parse_brokers("amqps://rabbit-1/;amqp://rabbit-2/")

    @pytest.mark.parametrize("uri", ["", " ; ", "redis://127.0.0.1:6379/0"])
    def test_a_uri_that_names_no_amqp_broker_is_refused(self, uri):
        with pytest.raises(ValueError, match="AMQP_URI"):
            parse_brokers(uri)


class TestVirtualHost:
    @pytest.mark.parametrize("uri, vhost", [
        ("amqp://guest:guest@127.0.0.1:5672/", "/"),
        ("amqp://guest:guest@127.0.0.1:5672", "/"),
        ("amqp://guest:guest@127.0.0.1:5672//", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "/"),
        ("amqp://guest:guest@127.0.0.1:5672/pont", "pont"),
        ("amqp://guest:guest@127.0.0.1:5672/%2Fpont", "/pont"),
    ])
    def test_the_path_is_the_virtual_host_as_kombu_reads_it(self, uri, vhost):
        assert parse_brokers(uri)[0].virtual_host == vhost


class TestCredentials:
    def test_percent_encoded_credentials_are_decoded(self):
        broker = parse_brokers("amqp://pont%40svc:p%3Ass%2Fw@rabbit:5672/")[0]

        assert (broker.userid, broker.password) == ("pont@svc", "p:ss/w")

    def test_guest_and_the_default_port_when_the_uri_leaves_them_out(self):
        broker = parse_brokers("amqp://rabbit")[0]

        assert (broker.userid, broker.password, broker.port) == ("guest", "guest", 5672)

    def test_the_password_never_appears_in_a_log_line(self):
        assert "s3cret" not in repr(parse_brokers("amqp://pont:s3cret@rabbit/")[0])


class TestTls:
    def test_amqps_means_tls_on_the_tls_port(self):
        broker = parse_brokers("amqps://pont:pw@rabbit.internal/")[0]

        assert (broker.tls, broker.port) == (True, 5671)

    def test_amqps_checks_the_certificate_against_the_brokers_host_name(self):
        options = parse_brokers("amqps://pont:pw@rabbit.internal:5671/")[0].ssl_options()

        # py-amqp makes the context with ssl.create_default_context() (certificate required);
        # tests/integration/test_broker.py shows a handshake refused for an unknown CA or a wrong name
        assert options == {"context": {"check_hostname": True}, "server_hostname": "rabbit.internal"}

    def test_plain_amqp_is_not_tls(self):
        assert parse_brokers("amqp://rabbit/")[0].ssl_options() is False


class TestNamekoConfig:
    def test_amqps_has_kombu_require_a_verified_certificate(self):
        config = Settings.from_env("referrals", {"AMQP_URI": "amqps://pont:pw@rabbit.internal/"}).nameko_config()

        assert config["AMQP_SSL"]["cert_reqs"] == ssl.CERT_REQUIRED
        assert "server_hostname" in config["AMQP_SSL"]  # None: kombu checks the name of the host it connects to

    def test_plain_amqp_sets_no_tls_options(self):
        config = Settings.from_env("referrals", {"AMQP_URI": "amqp://guest:guest@127.0.0.1:5672/"}).nameko_config()

        assert "AMQP_SSL" not in config

    def test_nameko_gets_the_failover_list_as_written(self):
        uri = "amqp://u:p@rabbit-1:5672/;amqp://u:p@rabbit-2:5672/"

        assert Settings.from_env("referrals", {"AMQP_URI": uri}).nameko_config()["AMQP_URI"] == uri

    def test_a_mixed_failover_list_is_refused_when_the_config_is_built(self):
        settings = Settings.from_env("referrals", {"AMQP_URI": "amqps://rabbit-1/;amqp://rabbit-2/"})

        with pytest.raises(ValueError, match="mixes"):
            settings.nameko_config()
