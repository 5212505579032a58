"""KMS seals: the append path's MAC on events, and the anchorer's signature on stream heads.

The MAC key may be used only by the append path's role, the signing key only by the anchorer's;
anyone may verify an anchor offline with the signing key's public key."""

from __future__ import annotations

import base64
import hashlib
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from histolabel.adapters.aws import client
from histolabel.config import Settings
from histolabel.resources import (
    ANCHOR_SIGNING_ALGORITHM,
    EVENT_MAC_ALGORITHM,
    anchor_key_alias,
    event_mac_key_alias,
)


class KmsSeals:
    def __init__(self, settings: Settings) -> None:
        self.kms = client("kms", settings)
        self.mac_key = event_mac_key_alias(settings)
        self.signing_key = anchor_key_alias(settings)

    def mac(self, event_hash: str) -> str:
        resp = self.kms.generate_mac(
            KeyId=self.mac_key, Message=event_hash.encode(), MacAlgorithm=EVENT_MAC_ALGORITHM
        )
        return base64.b64encode(resp["Mac"]).decode()

    def mac_valid(self, event_hash: str, mac: str | None) -> bool:
        if not mac:
            return False
        try:
            resp = self.kms.verify_mac(
                KeyId=self.mac_key,
                Message=event_hash.encode(),
                Mac=base64.b64decode(mac),
                MacAlgorithm=EVENT_MAC_ALGORITHM,
            )
        except ClientError as err:
            if err.response["Error"]["Code"] in ("KMSInvalidMacException", "ValidationException"):
                return False
            raise
        except ValueError:  # not base64
            return False
        return bool(resp["MacValid"])

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
