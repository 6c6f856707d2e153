"""The web service: nameko HTTP entrypoints, each handing its request to `pages.Web`."""
from __future__ import annotations

from pathlib import Path

from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from pont_shared.operations.ops import OpsEndpoints

from .pages import Web

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}
CONTENT_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


class Pages(DependencyProvider):
    """One `Web` per container, built from its settings."""

    def setup(self):
        self.web = Web(self.container.config["PONT_SETTINGS"])

    def get_dependency(self, worker_ctx):
        return self.web


class WebService(OpsEndpoints):
    """Pages for the people who use Pont, in Welsh and English; a client of the gateway's public API."""

    name = "web"
    pages = Pages()

    @http("GET", "/")
    def home(self, request):
        return self.pages.home(request)

    @http("GET,POST", "/sign-in")
    def sign_in(self, request):
        return self.pages.sign_in(request)

    @http("POST", "/sign-out")
    def sign_out(self, request):
        return self.pages.sign_out(request)

    @http("POST", "/language")
    def language(self, request):
        return self.pages.language(request)

    @http("GET", "/sessions")
    def sessions(self, request):
        return self.pages.sessions_list(request)

    @http("GET,POST", "/sessions/new")
    def session_new(self, request):
        return self.pages.session_new(request)

    @http("GET", "/sessions/<string:session_id>")
    def session(self, request, session_id):
        return self.pages.session_detail(request, session_id)

    @http("POST", "/sessions/<string:session_id>/appointments")
    def book(self, request, session_id):
        return self.pages.book(request, session_id)

    @http("POST", "/appointments/<string:appointment_id>/<string:action>")
    def outcome(self, request, appointment_id, action):
        return self.pages.outcome(request, appointment_id, action)

    @http("GET", "/reviews")
    def reviews(self, request):
        return self.pages.reviews(request)

    @http("GET", "/inbox")
    def inbox(self, request):
        return self.pages.inbox(request)

    @http("GET", "/referrals")
    def referrals(self, request):
        return self.pages.referrals_list(request)

    @http("GET,POST", "/referrals/new")
    def referral_new(self, request):
        return self.pages.referral_new(request)

    @http("GET", "/referrals/<string:referral_id>")
    def referral(self, request, referral_id):
        return self.pages.referral_detail(request, referral_id)

    @http("POST", "/referrals/<string:referral_id>/<string:action>")
    def referral_action(self, request, referral_id, action):
        return self.pages.referral_action(request, referral_id, action)

    @http("GET", "/static/<string:name>")
    def static(self, request, name):
        path = STATIC_FILES.get(name)
        if path is None:
            return Response("Not found", status=404, content_type="text/plain; charset=utf-8")
        return Response(path.read_bytes(), content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=3600"})
