"""The web service: nameko HTTP entrypoints, each handing its request to `pages.Web`."""
from __future__ import annotations

from pathlib import Path

from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from pont_shared.operations.ops import OpsEndpoints

from . import agreement_pages, consent_pages, family_pages, ledger_pages, transition_pages
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

    @http("POST", "/sign-in/email")
    def email_sign_in(self, request):
        return family_pages.email_sign_in(self.pages, request)

    @http("GET", "/sign-in/email")
    def email_link(self, request):
        return family_pages.email_link(self.pages, request)

    @http("GET", "/sign-in/callback")
    def sign_in_callback(self, request):
        return self.pages.sign_in_callback(request)

    @http("POST", "/sign-out")
    def sign_out(self, request):
        return self.pages.sign_out(request)

    @http("GET", "/signed-out")
    def signed_out(self, request):
        return self.pages.signed_out(request)

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

    @http("POST", "/referrals/preview")
    def referral_preview(self, request):
        return self.pages.referral_preview(request)

    @http("GET,POST", "/referrals/new")
    def referral_new(self, request):
        return self.pages.referral_new(request)

    @http("GET", "/referrals/<string:referral_id>")
    def referral(self, request, referral_id):
        return self.pages.referral_detail(request, referral_id)

    @http("POST", "/referrals/<string:referral_id>/<string:action>")
    def referral_action(self, request, referral_id, action):
        return self.pages.referral_action(request, referral_id, action)

    @http("GET", "/out-of-lessons")
    def out_of_lessons(self, request):
        return self.pages.out_of_lessons(request)

    @http("GET", "/pupils")
    def pupils(self, request):
        return consent_pages.find_pupil(self.pages, request)

    @http("GET,POST", "/consents/new")
    def consent_new(self, request):
        return consent_pages.consent_new(self.pages, request)

    @http("POST", "/consents/<string:consent_id>/withdraw")
    def consent_withdraw(self, request, consent_id):
        return consent_pages.withdraw_consent(self.pages, request, consent_id)

    @http("GET", "/children/<string:child_ref>/shared")
    def child_shared(self, request, child_ref):
        return ledger_pages.child_shared(self.pages, request, child_ref)

    @http("GET", "/children/<string:child_ref>/consents")
    def child_consents(self, request, child_ref):
        return consent_pages.child_consents(self.pages, request, child_ref)

    @http("GET,POST", "/family-invites/new")
    def family_invite(self, request):
        return family_pages.invite(self.pages, request)

    @http("GET,POST", "/children/<string:child_ref>/shared/<string:entry_id>/exempt")
    def family_exempt(self, request, child_ref, entry_id):
        return family_pages.exempt(self.pages, request, child_ref, entry_id)

    @http("POST", "/family-exemptions/<string:exemption_id>/review")
    def family_exemption_review(self, request, exemption_id):
        return family_pages.review_exemption(self.pages, request, exemption_id)

    @http("GET", "/family")
    def family(self, request):
        return family_pages.children(self.pages, request)

    @http("POST", "/family/link")
    def family_link(self, request):
        return family_pages.link(self.pages, request)

    @http("GET", "/family/children/<string:child_ref>")
    def family_child(self, request, child_ref):
        return family_pages.child(self.pages, request, child_ref)

    @http("POST", "/family/consents/<string:consent_id>/withdraw")
    def family_withdraw(self, request, consent_id):
        return family_pages.withdraw(self.pages, request, consent_id)

    @http("POST", "/family/consent-requests/<string:request_id>/<string:action>")
    def family_answer_request(self, request, request_id, action):
        return family_pages.answer_request(self.pages, request, request_id, action)

    @http("GET,POST", "/family/preferences")
    def family_preferences(self, request):
        return family_pages.preferences(self.pages, request)

    @http("GET", "/transitions")
    def transitions(self, request):
        return transition_pages.sent_list(self.pages, request)

    @http("GET,POST", "/transitions/new")
    def transitions_upload(self, request):
        return transition_pages.upload(self.pages, request)

    @http("POST", "/transitions/send")
    def transitions_send(self, request):
        return transition_pages.send(self.pages, request)

    @http("GET", "/transitions/inbox")
    def transitions_inbox(self, request):
        return transition_pages.inbox(self.pages, request)

    @http("POST", "/transitions/inbox/acknowledge")
    def transitions_acknowledge_all(self, request):
        return transition_pages.acknowledge(self.pages, request)

    @http("POST", "/transitions/<string:transition_id>/acknowledge")
    def transition_acknowledge(self, request, transition_id):
        return transition_pages.acknowledge(self.pages, request, transition_id)

    @http("GET", "/transitions/ctf")
    def transitions_ctf(self, request):
        return transition_pages.ctf(self.pages, request)

    @http("GET", "/agreements")
    def agreements(self, request):
        return agreement_pages.agreements_list(self.pages, request)

    @http("GET,POST", "/agreements/new")
    def agreement_new(self, request):
        return agreement_pages.agreement_new(self.pages, request)

    @http("POST", "/agreements/<string:agreement_id>/<string:action>")
    def agreement_action(self, request, agreement_id, action):
        return agreement_pages.agreement_action(self.pages, request, agreement_id, action)

    @http("GET", "/static/<string:name>")
    def static(self, request, name):
        path = STATIC_FILES.get(name)
        if path is None:
            return Response("Not found", status=404, content_type="text/plain; charset=utf-8")
        return Response(path.read_bytes(), content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=3600"})
