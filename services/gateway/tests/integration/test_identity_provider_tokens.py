"""Tokens from an identity provider (RS256/ES256, keys from its JWKS over HTTP) through the running gateway."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.api import api
from gateway.service import GatewayService
from pont_shared.config import OidcSettings
from pont_shared.testing import bearer, http_url

pytestmark = pytest.mark.integration
ISSUER = "https://idp.example.test/realms/pont"
AUDIENCE = "pont-gateway"
ME = "/api/v1/whoami"


class ProbeGateway(GatewayService):
    name = "gateway"

    @api("GET", "/api/v1/whoami", roles=("school_staff",), summary="test: the caller")
    def whoami(self, caller, body):
        return {"sub": caller.sub, "org": caller.org, "roles": sorted(caller.roles)}


class Jwks:
    """An identity provider's JWKS endpoint, served by the test; keys can be added (a rotation)."""

    def __init__(self):
        self.keys: dict[str, dict] = {}
        self.fetches = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                jwks.fetches += 1
                body = json.dumps({"keys": list(jwks.keys.values())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, kid: str, public_key, algorithm: str) -> None:
        tool = RSAAlgorithm if algorithm == "RS256" else ECAlgorithm
        self.keys[kid] = {**tool.to_jwk(public_key, as_dict=True), "kid": kid, "alg": algorithm, "use": "sig"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def idp(rsa_key, ec_key):
    jwks = Jwks()
    jwks.publish("rsa-1", rsa_key.public_key(), "RS256")
    jwks.publish("ec-1", ec_key.public_key(), "ES256")
    yield jwks
    jwks.close()


def start_gateway(start_service, make_settings, service_name, idp, **claims) -> str:
    oidc = OidcSettings(jwks_url=idp.url, issuer=ISSUER, audience=AUDIENCE, **claims)
    return http_url(start_service(ProbeGateway, make_settings("gateway", "sqlite://", oidc=oidc), name=service_name))


@pytest.fixture
def gateway(start_service, make_settings, service_name, idp):
    return start_gateway(start_service, make_settings, service_name, idp)


def claims(**overrides) -> dict:
    now = int(time.time())
    return {"sub": "idp-user-1", "org": "school:6612001", "roles": ["school_staff"], "iss": ISSUER,
            "aud": AUDIENCE, "iat": now, "exp": now + 300, **overrides}


def token(key, kid: str, algorithm: str = "RS256", **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers={"kid": kid})


def call(base: str, raw_token: str) -> requests.Response:
    return requests.get(f"{base}{ME}", headers={"Authorization": f"Bearer {raw_token}"}, timeout=30)


def authenticated(response: requests.Response, sub: str = "idp-user-1") -> bool:
    return response.status_code == 200 and response.json() == {"sub": sub, "org": "school:6612001",
                                                                "roles": ["school_staff"]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestAccepted:
    def test_an_rs256_token_from_the_provider_is_accepted_and_its_keys_are_cached(self, gateway, idp, rsa_key):
        for _ in range(3):
            assert authenticated(call(gateway, token(rsa_key, "rsa-1")))
        assert idp.fetches == 1

    def test_an_es256_token_from_the_provider_is_accepted(self, gateway, ec_key):
        assert authenticated(call(gateway, token(ec_key, "ec-1", "ES256")))

    def test_a_key_the_provider_rotated_in_is_fetched_on_its_unknown_kid(self, start_service, make_settings,
                                                                           service_name, idp, rsa_key):
        gateway = start_gateway(start_service, make_settings, service_name, idp, refresh_cooldown_seconds=0)
        assert authenticated(call(gateway, token(rsa_key, "rsa-1")))
        rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        idp.publish("rsa-2", rotated.public_key(), "RS256")

        assert authenticated(call(gateway, token(rotated, "rsa-2")))
        assert idp.fetches == 2

    def test_development_hs256_tokens_still_work_alongside(self, gateway):
        response = requests.get(f"{gateway}{ME}", headers=bearer("t1", "school:6612001", ["school_staff"]),
                                timeout=30)
        assert authenticated(response, sub="t1")

    def test_role_and_org_claim_names_are_configurable(self, start_service, make_settings, service_name, idp,
                                                       rsa_key):
        base = start_gateway(start_service, make_settings, service_name, idp,
                             roles_claim="realm_access.roles", org_claim="pont_org")
        custom = claims(realm_access={"roles": ["school_staff"]}, pont_org="school:6612001")
        del custom["roles"], custom["org"]
        good = jwt.encode(custom, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})

        assert authenticated(call(base, good))
        assert call(base, token(rsa_key, "rsa-1")).status_code == 401  # the default claim names are not read


class TestRefused:
    @pytest.mark.parametrize("overrides", [
        {"iss": "https://evil.example.test/"},
        {"aud": "another-service"},
        {"exp": int(time.time()) - 60},
        {"org": "hospital-42"},
    ], ids=["wrong-iss", "wrong-aud", "expired", "bad-org"])
    def test_a_token_with_a_wrong_claim_is_401(self, gateway, rsa_key, overrides):
        assert call(gateway, token(rsa_key, "rsa-1", **overrides)).status_code == 401

    def test_a_token_without_iss_or_aud_is_401(self, gateway, rsa_key):
        bare = claims()
        del bare["iss"], bare["aud"]
        assert call(gateway, jwt.encode(bare, rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})).status_code == 401

    def test_a_key_the_provider_does_not_publish_is_401(self, gateway):
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert call(gateway, token(stranger, "rsa-unknown")).status_code == 401

    def test_unknown_kids_within_the_cooldown_do_not_refetch_the_key_set(self, gateway, idp, rsa_key):
        assert authenticated(call(gateway, token(rsa_key, "rsa-1")))
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n in range(5):
            assert call(gateway, token(stranger, f"forged-{n}")).status_code == 401
        assert idp.fetches == 1

    def test_a_known_kid_with_another_key_is_401(self, gateway):
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert call(gateway, token(stranger, "rsa-1")).status_code == 401

    def test_alg_none_is_401(self, gateway):
        unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"})
        assert call(gateway, unsigned).status_code == 401

    def test_hs256_signed_with_the_providers_public_key_is_401(self, gateway, rsa_key):
        public_pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = b64(json.dumps(claims()).encode())
        signature = b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())

        assert call(gateway, f"{header}.{payload}.{signature}").status_code == 401

    def test_an_idp_token_is_401_when_no_provider_is_configured(self, start_service, make_settings, service_name,
                                                                rsa_key):
        base = http_url(start_service(ProbeGateway, make_settings("gateway", "sqlite://"), name=service_name))
        assert call(base, token(rsa_key, "rsa-1")).status_code == 401
