"""KMS seals: the append path's MACs on events, and the anchorer's signature on stream heads.

Events are MACed with data keys (envelope MACs): the append path asks KMS for a data key
(GenerateDataKey under the event MAC key, which only the append path's roles may use), keeps
its plaintext in memory for EVENT_MAC_KEY_SECONDS, MACs each event's hash with it locally
(HMAC-SHA-256) and stores the key's wrapped copy in the events table. A verifier unwraps the key
(kms:Decrypt, granted to the anchorer and auditors) and checks the MAC. One KMS call per command
had been a third of a label's cost in the API (bench/event_store.py's hot slide); now it is one
call per process every few minutes. The key's creation time is bound into its encryption context
and an event's time must fall within the key's life, so a key copied out of a process's memory
cannot MAC events after it expired.

The signing key is used only by the anchorer; anyone may verify an anchor offline with its
public key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.resources import (
    ANCHOR_SIGNING_ALGORITHM,
    EVENT_MAC_KEY_SECONDS,
    anchor_key_alias,
    event_mac_key_alias,
)

MAC_FORMAT = "v2"
# How far an event's time may lie outside its key's life: clocks of different processes.
CLOCK_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class MacKey:
    """A data key: `wrapped` is what is stored; `plain` never leaves the process."""

    id: str
    created: str  # ISO-8601 UTC, bound into the encryption context
    wrapped: bytes
    plain: bytes

    def context(self, stage: str) -> dict[str, str]:
        return mac_key_context(stage, self.id, self.created)

    def covers(self, at: str) -> bool:
        """Whether an event stamped `at` was made while this key was in use."""
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return False
        start = datetime.fromisoformat(self.created)
        return start - CLOCK_SLACK <= when <= start + timedelta(seconds=EVENT_MAC_KEY_SECONDS) + CLOCK_SLACK


def mac_key_context(stage: str, key_id: str, created: str) -> dict[str, str]:
    return {"histolabel": "event-mac", "stage": stage, "key": key_id, "created": created}


def mac_with(key: MacKey, event_hash: str) -> str:
    digest = hmac.new(key.plain, event_hash.encode(), hashlib.sha256).digest()
    return f"{MAC_FORMAT}:{key.id}:{base64.b64encode(digest).decode()}"


def mac_key_id(mac: str) -> str | None:
    parts = mac.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == MAC_FORMAT else None


class KmsSeals:
    def __init__(self, settings: Settings) -> None:
        self.kms = client("kms", settings)
        self.stage = settings.prefix
        self.mac_key = event_mac_key_alias(settings)
        self.signing_key = anchor_key_alias(settings)
        self._lock = threading.Lock()
        self._current: tuple[MacKey, float] | None = None
        self._unwrapped: dict[str, bytes] = {}

    def current_mac_key(self) -> MacKey:
        """The data key this process MACs with, renewed after EVENT_MAC_KEY_SECONDS."""
        with self._lock:
            if self._current is not None and time.monotonic() - self._current[1] < EVENT_MAC_KEY_SECONDS:
                return self._current[0]
            key_id = uuid.uuid4().hex
            created = datetime.now(UTC).isoformat(timespec="microseconds")
            resp = self.kms.generate_data_key(
                KeyId=self.mac_key,
                KeySpec="AES_256",
                EncryptionContext=mac_key_context(self.stage, key_id, created),
            )
            key = MacKey(key_id, created, resp["CiphertextBlob"], resp["Plaintext"])
            self._current = (key, time.monotonic())
            return key

    def mac_valid(self, event_hash: str, at: str, mac: str | None, key: MacKey | None) -> bool:
        """`key`: the stored (wrapped) key the MAC names, `plain` empty; None when absent."""
        if not mac or key is None or mac_key_id(mac) != key.id or not key.covers(at):
            return False
        plain = self._unwrap(key)
        if plain is None:
            return False
        return hmac.compare_digest(mac, mac_with(replace(key, plain=plain), event_hash))

    def _unwrap(self, key: MacKey) -> bytes | None:
        with self._lock:
            if key.id in self._unwrapped:
                return self._unwrapped[key.id]
        try:
            resp = self.kms.decrypt(
                KeyId=self.mac_key, CiphertextBlob=key.wrapped, EncryptionContext=key.context(self.stage)
            )
        except ClientError as err:
            # A key wrapped under another key, or its context (id, time) changed.
            if err.response["Error"]["Code"] in ("InvalidCiphertextException", "IncorrectKeyException"):
                return None
            raise
        plain = bytes(resp["Plaintext"])
        with self._lock:
            self._unwrapped[key.id] = plain
        return plain

    @staticmethod
    def _signed_bytes(message: bytes) -> bytes:
        # KMS signs at most 4 KiB raw, and an anchor of a project with many slides is longer;
        # its SHA-256 in hex is signed instead (moto does not emulate MessageType=DIGEST).
        return hashlib.sha256(message).hexdigest().encode()

    def sign_anchor(self, message: bytes) -> str:
        resp = self.kms.sign(
            KeyId=self.signing_key,
            Message=self._signed_bytes(message),
            MessageType="RAW",
            SigningAlgorithm=ANCHOR_SIGNING_ALGORITHM,
        )
        return base64.b64encode(resp["Signature"]).decode()

    @cached_property
    def public_key(self) -> Any:
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        return load_der_public_key(self.kms.get_public_key(KeyId=self.signing_key)["PublicKey"])

    def signature_valid(self, message: bytes, signature: str) -> bool:
        """Checked offline with the public key, as an auditor outside the account would."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            self.public_key.verify(
                base64.b64decode(signature), self._signed_bytes(message), ec.ECDSA(hashes.SHA256())
            )
        except (InvalidSignature, ValueError):
            return False
        return True
