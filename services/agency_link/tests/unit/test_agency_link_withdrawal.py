"""A withdrawn consent restricts the agency's copy whichever is handled first: the withdrawal
(from consent's outbox) or the disclosure (from referrals' or transitions' outbox)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agency_link import handlers
from agency_link.orm import metadata, tables
from agency_link.repository import CopyRepository
from pont_shared.contract.events import ConsentWithdrawn, DisclosureDelivered
from pont_shared.testing import in_memory_units_of_work

HEALTH = "health:cardiff-vale"
CHILD = "c_" + "2" * 32
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
STAFF = {"sub": "n1", "org": HEALTH, "roles": ["school_nurse"]}


def delivered(disclosure_id: str = "d-1", basis_ref: str = "consent-1") -> DisclosureDelivered:
    return DisclosureDelivered(
        disclosure_id=disclosure_id, child_ref=CHILD, to_org=HEALTH, from_org="school:6612001", purpose="referral",
        subject_kind="referral", subject_id="r-" + disclosure_id, basis="consent", basis_ref=basis_ref,
        content={"categories": {"contact": {"given_name": "Ffion"}}, "basis_refs": {"contact": basis_ref}})


def withdrawn(consent_id: str = "consent-1", action: str = "restrict", recipients=(HEALTH,)) -> ConsentWithdrawn:
    return ConsentWithdrawn(consent_id=consent_id, child_ref=CHILD, recipients=list(recipients), action=action)


@pytest.fixture
def uow_factory():
    with in_memory_units_of_work(metadata, tables, "/pont/agency_link") as new:
        yield new


def handle(uow_factory, *events) -> list[dict]:
    for event in events:
        if isinstance(event, ConsentWithdrawn):
            handlers.on_consent_withdrawn(uow_factory(), event, HEALTH, NOW)
        else:
            handlers.store_disclosure(uow_factory(), event, HEALTH, NOW)
    return [copy.wire() for copy in handlers.inbox(uow_factory(), HEALTH, STAFF)]


class TestWithdrawalBeforeTheDisclosureArrives:
    @pytest.mark.parametrize("order", ["withdrawal first", "disclosure first"])
    def test_the_copy_is_restricted_in_either_order(self, uow_factory, order):
        events = (withdrawn(), delivered()) if order == "withdrawal first" else (delivered(), withdrawn())

        [item] = handle(uow_factory, *events)

        assert item["restricted"] and item["content"] is None

    def test_an_erase_handled_first_means_the_content_is_never_stored(self, uow_factory):
        handle(uow_factory, withdrawn(action="erase"), delivered())

        with uow_factory() as uow:
            [copy] = CopyRepository(uow.session).of_child(CHILD)
        assert copy.content is None and copy.restriction == "erase"

    def test_an_erase_after_a_restrict_of_the_same_consent_erases_later_copies(self, uow_factory):
        handle(uow_factory, withdrawn(action="restrict"), withdrawn(action="erase"), delivered())

        with uow_factory() as uow:
            [copy] = CopyRepository(uow.session).of_child(CHILD)
        assert copy.restriction == "erase" and copy.content is None

    def test_a_copy_under_another_consent_is_served(self, uow_factory):
        [item] = handle(uow_factory, withdrawn(consent_id="consent-9"), delivered(basis_ref="consent-1"))

        assert not item["restricted"] and item["content"]["categories"]["contact"]["given_name"] == "Ffion"

    def test_a_withdrawal_that_did_not_name_this_agency_restricts_nothing_here(self, uow_factory):
        [item] = handle(uow_factory, withdrawn(recipients=("youth_work:cardiff",)), delivered())

        assert not item["restricted"]
