import pytest

from pont_shared.auth import Unauthenticated, mint, verify
from pont_shared.identity import child_ref, make_upn, upn_check_letter, upn_problem

SECRET = "test-secret"


class TestUpn:
    def test_accepts_a_upn_whose_check_letter_matches(self):
        upn = make_upn(12345)

        assert upn_problem(upn) is None

    def test_computes_the_dfe_check_letter(self):
        # digits 2..13 weighted 2..13: 2*0+3*0+... worked by hand for 000000000001 → 13 → P
        assert upn_check_letter("000000000001") == "P"
        assert upn_check_letter("000000000000") == "A"

    @pytest.mark.parametrize(
        "upn", ["", "A12345678901", "A1234567890123", "a00000000000", "1000000000000", "Z0000000000X1"])
    def test_rejects_the_wrong_shape(self, upn):
        assert "13 characters" in upn_problem(upn)

    def test_rejects_a_wrong_check_letter(self):
        upn = make_upn(777)
        wrong = ("B" if upn[0] != "B" else "C") + upn[1:]

        assert "check letter" in upn_problem(wrong)


class TestChildRef:
    def test_is_stable_and_keyed(self):
        upn = make_upn(42)

        assert child_ref(upn, "k1") == child_ref(upn, "k1")
        assert child_ref(upn, "k1") != child_ref(upn, "k2")
        assert upn not in child_ref(upn, "k1")


class TestVerifyToken:
    def test_returns_the_caller_of_a_valid_token(self):
        token = mint("u1", "school:6612001", ["dsl", "school_staff"], SECRET)

        caller = verify(f"Bearer {token}", SECRET)

        assert (caller.sub, caller.org, caller.roles) == ("u1", "school:6612001", frozenset({"dsl", "school_staff"}))

    @pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer not.a.jwt"])
    def test_refuses_a_missing_or_malformed_token(self, header):
        with pytest.raises(Unauthenticated):
            verify(header, SECRET)

    def test_refuses_an_expired_token(self):
        token = mint("u1", "school:6612001", ["dsl"], SECRET, ttl_seconds=-10)

        with pytest.raises(Unauthenticated, match="expired"):
            verify(f"Bearer {token}", SECRET)

    def test_refuses_a_token_signed_with_another_secret(self):
        token = mint("u1", "school:6612001", ["dsl"], "other")

        with pytest.raises(Unauthenticated):
            verify(f"Bearer {token}", SECRET)

    def test_refuses_an_org_that_is_not_kind_colon_code(self):
        token = mint("u1", "nowhere", ["dsl"], SECRET)

        with pytest.raises(Unauthenticated, match="org"):
            verify(f"Bearer {token}", SECRET)
