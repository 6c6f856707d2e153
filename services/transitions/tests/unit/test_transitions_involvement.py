"""Open agency involvement from the referrals service: filled where the request left it out, and
done without when the referrals service cannot answer."""
from __future__ import annotations

import eventlet
from nameko.exceptions import MethodNotFound, UnknownService

from transitions import domain, handlers
from transitions.dependencies import OpenInvolvement
from transitions.handlers import PrepareCohort, PupilRecord

LEAD = {"sub": "lead", "org": "school:6612001", "roles": ["transition_lead"]}
OPEN = {"service": "school_nursing", "to_org": "health:cv", "status": "sent", "since": "2026-11-01"}


def cohort(*pupils: PupilRecord) -> PrepareCohort:
    return PrepareCohort(to_school="school:6614002", pupils=list(pupils), send=True, caller=LEAD)


class TestWithOpenInvolvement:
    def test_fills_only_pupils_whose_request_did_not_supply_it(self):
        asked = []

        def lookup(refs, caller):
            asked.append((refs, caller))
            return {"c_1": [OPEN], "c_2": [OPEN]}

        supplied = [{"agency": "youth_work:cardiff", "service": "youth_work"}]
        command = cohort(PupilRecord("c_1", {"identifiers": {}}),
                         PupilRecord("c_2", {"identifiers": {}, "agency_involvement": supplied}),
                         PupilRecord("c_3", {"identifiers": {}}))

        filled = handlers.with_open_involvement(command, lookup)

        assert asked == [(["c_1", "c_3"], LEAD)]
        by_ref = {p.child_ref: p.sections for p in filled.pupils}
        assert by_ref["c_1"]["agency_involvement"] == [{"agency": "health:cv", "service": "school_nursing",
                                                         "status": "sent", "since": "2026-11-01",
                                                         "source": "referrals"}]
        assert by_ref["c_2"]["agency_involvement"] == supplied
        assert "agency_involvement" not in by_ref["c_3"]

    def test_the_filled_section_is_decided_on_family_context_like_any_other(self):
        question = domain.question_for({"identifiers": {}, "agency_involvement": [OPEN]}, frozenset())
        assert "family_context" in question.categories

    def test_asks_nothing_when_every_pupil_supplied_it(self):
        def lookup(refs, caller):
            raise AssertionError("not asked")

        command = cohort(PupilRecord("c_1", {"identifiers": {}, "agency_involvement": []}))
        assert handlers.with_open_involvement(command, lookup) is command


class _Method:
    def __init__(self, call_async):
        self.call_async = call_async


class _Proxy:
    def __init__(self, call_async):
        self.open_involvement = _Method(call_async)


class _NeverAnswers:
    def result(self):
        eventlet.event.Event().wait()


class TestOpenInvolvementPort:
    def test_an_absent_referrals_service_means_nothing_known(self):
        def absent(refs, caller):
            raise UnknownService("referrals")

        assert OpenInvolvement(_Proxy(absent), timeout=1)(["c_1"], LEAD) == {}

    def test_an_older_referrals_service_without_the_method_means_nothing_known(self):
        def old(refs, caller):
            raise MethodNotFound("open_involvement")

        assert OpenInvolvement(_Proxy(old), timeout=1)(["c_1"], LEAD) == {}

    def test_a_silent_referrals_service_times_out_to_nothing_known(self):
        assert OpenInvolvement(_Proxy(lambda refs, caller: _NeverAnswers()), timeout=0.05)(["c_1"], LEAD) == {}
