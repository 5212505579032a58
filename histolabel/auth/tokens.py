"""Verify a Cognito user-pool ID token exactly as AWS documents it: RS256 signature by a key of
the pool's JWKS, issuer, audience (the app client), token_use "id" and expiry.

Pure: the JWKS is passed in as a dict; fetching and caching it is the adapter's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

LEEWAY_S = 30


class AuthError(Exception):
    """A missing, malformed, expired or forged token: the caller gets 401."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Identity:
    user: str
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolConfig:
    region: str
    user_pool_id: str
    client_id: str

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    @property
    def default_jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"


def bearer_token(header: str | None) -> str:
    if not header:
        raise AuthError("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <token>'")
    return token.strip()


def verify_id_token(
    token: str,
    pool: PoolConfig,
    jwks_for: Callable[[str], dict[str, Any] | None],
) -> Identity:
    """`jwks_for(kid)` returns the JWK with that key id (refreshing a cache if it must), or None."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(f"malformed token: {exc}") from None
    if header.get("alg") != "RS256":
        raise AuthError(f"token algorithm {header.get('alg')!r} is not RS256")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise AuthError("token has no key id")
    jwk = jwks_for(kid)
    if jwk is None:
        raise AuthError("token was not signed by a key of this user pool")
    try:
        key = RSAAlgorithm.from_jwk(jwk)
        options: dict[str, Any] = {"require": ["exp", "iat", "iss", "aud", "token_use"]}
        claims = jwt.decode(
            token,
            key=key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=pool.client_id,
            issuer=pool.issuer,
            leeway=LEEWAY_S,
            options=options,  # type: ignore[arg-type]
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token has expired") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"token rejected: {exc}") from None
    if claims.get("token_use") != "id":
        raise AuthError("token is not an ID token (token_use must be 'id')")
    user = claims.get("cognito:username")
    if not isinstance(user, str) or not user:
        raise AuthError("token has no cognito:username claim")
    return Identity(user=user, claims=claims)
