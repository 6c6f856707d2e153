"""The gateway's caller assertion: signed with the private key, verified with the public one."""
from __future__ import annotations

import time

import jwt
import pytest

from pont_shared.contract.caller import (
    ASSERTION_SECONDS,
    CLOCK_SKEW_SECONDS,
    CallerRefused,
    CallerSigner,
    CallerVerifier,
    new_signing_key,
    public_key_of,
)

KEY = new_signing_key()
SIGNER, VERIFIER = CallerSigner(KEY), CallerVerifier(public_key_of(KEY))


def test_a_signed_caller_verifies_to_its_claims():
    assertion = SIGNER.sign("dsl1", "school:6612001", {"dsl", "school_staff"})
    assert VERIFIER.verify(assertion) == {"sub": "dsl1", "org": "school:6612001", "roles": ["dsl", "school_staff"]}


def test_another_keys_assertion_is_refused():
    assertion = CallerSigner(new_signing_key()).sign("dsl1", "school:6612001", ["dsl"])
    with pytest.raises(CallerRefused, match="not valid"):
        VERIFIER.verify(assertion)


def test_an_assertion_expires_after_its_lifetime_and_the_allowed_clock_skew():
    issued = time.time() - ASSERTION_SECONDS - CLOCK_SKEW_SECONDS - 1
    with pytest.raises(CallerRefused, match="expired"):
        VERIFIER.verify(SIGNER.sign("dsl1", "school:6612001", ["dsl"], now=issued))
    VERIFIER.verify(SIGNER.sign("dsl1", "school:6612001", ["dsl"], now=issued + 2))


def test_a_changed_claim_breaks_the_signature():
    header, payload, signature = SIGNER.sign("staff1", "school:6612001", ["school_staff"]).split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(b"school_staff", b"dsl")).decode()
    with pytest.raises(CallerRefused):
        VERIFIER.verify(".".join((header, forged_payload, signature)))


def test_an_unsigned_token_claiming_no_algorithm_is_refused():
    unsigned = jwt.encode({"sub": "x", "org": "school:1", "roles": ["dsl"], "exp": time.time() + 60,
                           "iat": time.time(), "iss": "pont-gateway", "aud": "pont-services"}, None, algorithm="none")
    with pytest.raises(CallerRefused):
        VERIFIER.verify(unsigned)


def test_a_key_that_is_not_32_bytes_is_refused_at_construction():
    with pytest.raises(ValueError, match="32 bytes"):
        CallerVerifier("c2hvcnQ=")
