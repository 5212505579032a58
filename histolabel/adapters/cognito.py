"""Cognito: create the user pool, app client and users (local up, infra add-user), sign in, and
fetch the pool's JWKS (cached per process) for token verification."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings, get_settings
from histolabel.resources import WEB_CLIENT_AUTH_FLOWS

JWKS_TTL_S = 3600
# A token with an unknown key id makes us refetch at most this often (key rotation).
JWKS_MIN_REFRESH_S = 30


@dataclass(frozen=True)
class Pool:
    user_pool_id: str
    client_id: str


def pool_name(settings: Settings) -> str:
    return f"{settings.prefix}-users"


def ensure_pool(settings: Settings | None = None) -> Pool:
    """The stack's user pool and its public app client (USER_PASSWORD_AUTH + SRP), made once."""
    s = settings or get_settings()
    idp = client("cognito-idp", s)
    name = pool_name(s)
    pools = idp.list_user_pools(MaxResults=60)["UserPools"]
    pool_id = next((p["Id"] for p in pools if p["Name"] == name), None)
    if pool_id is None:
        pool_id = idp.create_user_pool(
            PoolName=name,
            Policies={"PasswordPolicy": {"MinimumLength": 8}},
            AutoVerifiedAttributes=["email"],
        )["UserPool"]["Id"]
    clients = idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in clients if c["ClientName"] == "web"), None)
    if client_id is None:
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="web",
            GenerateSecret=False,
            ExplicitAuthFlows=WEB_CLIENT_AUTH_FLOWS,
        )["UserPoolClient"]["ClientId"]
    return Pool(user_pool_id=pool_id, client_id=client_id)


def add_user(
    pool: Pool, username: str, password: str, email: str | None = None, settings: Settings | None = None
) -> None:
    """Create (or reset) a user with a permanent password."""
    idp = client("cognito-idp", settings)
    attrs = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}] if email else []
    try:
        idp.admin_create_user(
            UserPoolId=pool.user_pool_id, Username=username, UserAttributes=attrs, MessageAction="SUPPRESS"
        )
    except ClientError as err:
        if err.response["Error"]["Code"] != "UsernameExistsException":
            raise
    idp.admin_set_user_password(
        UserPoolId=pool.user_pool_id, Username=username, Password=password, Permanent=True
    )


def login(pool: Pool, username: str, password: str, settings: Settings | None = None) -> str:
    """The ID token of a USER_PASSWORD_AUTH sign-in."""
    idp = client("cognito-idp", settings)
    result = idp.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return str(result["AuthenticationResult"]["IdToken"])


class UserDirectory:
    """Who is in the user pool: a member id is the Username (the token's cognito:username)."""

    def __init__(self, user_pool_id: str, settings: Settings | None = None) -> None:
        self.user_pool_id = user_pool_id
        self.idp = client("cognito-idp", settings)

    def __call__(self, user: str) -> str | None:
        """The Username of `user` (a Username, or an email address), None if nobody has it."""
        try:
            return str(self.idp.admin_get_user(UserPoolId=self.user_pool_id, Username=user)["Username"])
        except ClientError as err:
            if err.response["Error"]["Code"] != "UserNotFoundException":
                raise
        if "@" not in user or '"' in user:
            return None
        found = self.idp.list_users(UserPoolId=self.user_pool_id, Filter=f'email = "{user}"', Limit=2)[
            "Users"
        ]
        return str(found[0]["Username"]) if len(found) == 1 else None

    def invite(self, email: str) -> tuple[str, str]:
        """Create a user for `email` with a temporary password (Cognito emails the invitation
        where the pool sends mail; they choose their own password at first sign-in). Returns the
        pool's username and the temporary password, for the owner to pass on where mail is off."""
        import secrets

        password = f"{secrets.token_urlsafe(12)}-Aa9"
        made = self.idp.admin_create_user(
            UserPoolId=self.user_pool_id,
            Username=email,
            TemporaryPassword=password,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            DesiredDeliveryMediums=["EMAIL"],
        )
        return str(made["User"]["Username"]), password

    def describe(self, user: str) -> dict[str, str | None]:
        """How to show `user` to people: their name and email (None where the pool has none,
        or no longer has the user)."""
        try:
            attrs = self.idp.admin_get_user(UserPoolId=self.user_pool_id, Username=user)["UserAttributes"]
        except ClientError as err:
            if err.response["Error"]["Code"] != "UserNotFoundException":
                raise
            attrs = []
        found = {a["Name"]: a["Value"] for a in attrs}
        return {"email": found.get("email"), "name": found.get("name")}


class JwksCache:
    """Keys by kid, fetched on first use, refreshed after a TTL or when an unknown kid shows up."""

    def __init__(self, url: str, ttl_s: float = JWKS_TTL_S) -> None:
        self.url, self.ttl_s = url, ttl_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        with urllib.request.urlopen(self.url, timeout=5) as resp:
            body = json.loads(resp.read())
        self._keys = {k["kid"]: k for k in body.get("keys", []) if "kid" in k}
        self._fetched = time.monotonic()

    def __call__(self, kid: str) -> dict[str, Any] | None:
        with self._lock:
            age = time.monotonic() - self._fetched
            stale = not self._fetched or age > self.ttl_s
            if stale or (kid not in self._keys and age > JWKS_MIN_REFRESH_S):
                self._fetch()
            return self._keys.get(kid)
