"""An OpenID Connect provider for tests: what the web pages' sign-in talks to (`Provider`)."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from urllib.parse import urlencode, urljoin

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

CLIENT_ID, API_AUDIENCE = "pont-web", "pont-api"
REDIRECT_URL = "https://pont.example/sign-in/callback"
USER = {"sub": "nurse-7", "name": "Nyrs Saith", "org": "health:cardiff-vale", "roles": ["school_nurse"]}


class Provider:
    """An OpenID provider with one user (`user`: `USER` unless a test changes it) and one client
    (`client_id`, `redirect_url`), on a free port.

    Discovery, JWKS, an authorization endpoint that signs the user in at once, and a token
    endpoint that checks the client's redirect URL and the PKCE verifier against the challenge
    (S256) and honours each code once; it issues an RS256 ID token for the client (with the
    nonce it was asked for) and an access token for `API_AUDIENCE`. Its end-session endpoint
    (RP-Initiated Logout; left out of discovery when `ends_sessions` is False) counts the sessions
    it ended (`ended`) and sends the browser to the client's registered post-logout URL.
    """

    def __init__(self, client_id: str = CLIENT_ID, redirect_url: str = REDIRECT_URL):
        self.client_id, self.redirect_url = client_id, redirect_url
        self.user = dict(USER)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.id_token_changes: dict = {}   # a test's way to make the provider send a token that must be refused
        self.post_logout_url = urljoin(redirect_url, "/signed-out")
        self.ends_sessions, self.ended = True, 0
        self.server = make_server("127.0.0.1", 0, self.app)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, environ, start_response):
        request = Request(environ)
        handler = {"/.well-known/openid-configuration": self.discovery, "/jwks": self.jwks,
                   "/authorize": self.authorize, "/token": self.token,
                   "/end-session": self.end_session}.get(request.path)
        response = handler(request) if handler else Response(status=404)
        return response(environ, start_response)

    def discovery(self, _request) -> Response:
        ending = {"end_session_endpoint": f"{self.url}/end-session"} if self.ends_sessions else {}
        return self._json({"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                           "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks", **ending})

    def jwks(self, _request) -> Response:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return self._json({"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]})

    def authorize(self, request) -> Response:
        asked = request.args
        if (asked.get("client_id"), asked.get("redirect_uri"), asked.get("response_type"),
                asked.get("code_challenge_method")) != (self.client_id, self.redirect_url, "code", "S256"):
            return Response("bad authorization request", status=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": asked["code_challenge"], "nonce": asked.get("nonce")}
        return Response(status=302, headers={
            "Location": f"{self.redirect_url}?{urlencode({'code': code, 'state': asked['state']})}"})

    def token(self, request) -> Response:
        form = request.form
        granted = self.codes.pop(form.get("code", ""), None)   # a code is good once
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if granted is None or form.get("redirect_uri") != self.redirect_url or challenge != granted["challenge"]:
            return self._json({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        id_token = {"iss": self.url, "aud": self.client_id, "iat": now, "exp": now + 300, "nonce": granted["nonce"],
                    **self.user, **self.id_token_changes}
        access_token = {"iss": self.url, "aud": API_AUDIENCE, "iat": now, "exp": now + 300, **self.user}
        return self._json({"token_type": "Bearer", "expires_in": 300, "id_token": self._sign(id_token),
                           "access_token": self._sign(access_token)})

    def end_session(self, request) -> Response:
        asked = request.args
        if (asked.get("client_id"), asked.get("post_logout_redirect_uri")) != (self.client_id, self.post_logout_url):
            return Response("unknown client or post-logout URL", status=400)
        self.ended += 1
        return Response(status=302, headers={"Location": self.post_logout_url})

    def _sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-key"})

    @staticmethod
    def _json(body: dict, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def close(self):
        self.server.shutdown()
