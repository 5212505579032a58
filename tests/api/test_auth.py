"""Token verification: only a current ID token of this pool, signed by its key, gets in."""

from __future__ import annotations

import time

import jwt
import pytest

from histolabel.auth.tokens import AuthError, bearer_token, verify_id_token
from tests.api.conftest import POOL


def verify(signer, token):
    return verify_id_token(token, POOL, lambda kid: signer.jwk if kid == signer.kid else None)


def test_valid_token_names_the_user(signer):
    identity = verify(signer, signer.token("ana"))
    assert identity.user == "ana"
    assert identity.claims["email"] == "ana@example.org"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "another-client"}, "(?i)audience"),
        ({"iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"}, "issuer"),
        ({"token_use": "access"}, "token_use"),
        ({"cognito:username": None}, "cognito:username"),
        ({"exp": None}, "exp"),
    ],
)
def test_wrong_claims_are_refused(signer, overrides, message):
    with pytest.raises(AuthError, match=message):
        verify(signer, signer.token("ana", **overrides))


def test_forged_signature_is_refused(signer, forger):
    with pytest.raises(AuthError, match="rejected"):
        verify(signer, forger.token("ana"))


def test_unknown_key_and_other_algorithms_are_refused(signer):
    other = jwt.encode({"cognito:username": "ana"}, "s" * 40, algorithm="HS256", headers={"kid": signer.kid})
    with pytest.raises(AuthError, match="RS256"):
        verify(signer, other)
    token = jwt.encode({"a": 1}, signer.key, algorithm="RS256", headers={"kid": "nope"})
    with pytest.raises(AuthError, match="not signed by a key"):
        verify(signer, token)
    with pytest.raises(AuthError, match="malformed"):
        verify(signer, "not.a.token")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer"])
def test_bearer_header_is_required(header):
    with pytest.raises(AuthError):
        bearer_token(header)
