"""The key pair CloudFront checks slide-data cookies with. The private half never leaves
SSM Parameter Store (SecureString, read by the API); the public half goes to the template."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from histolabel.config import Settings


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    public_pem: str


def parameter_name(settings: Settings) -> str:
    return f"/histolabel/{settings.stage}/data-signing-key"


def _public(private_pem: str) -> SigningKey:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKey(hashlib.sha256(public_pem.encode()).hexdigest()[:12], public_pem)


def ensure_signing_key(ssm: Any, settings: Settings, *, rotate: bool = False) -> tuple[SigningKey, bool]:
    """The stage's key (made on first deploy, or anew when rotating); True when it was made now."""
    name = parameter_name(settings)
    if not rotate:
        try:
            value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            return _public(value), False
        except ClientError as err:
            if err.response["Error"]["Code"] != "ParameterNotFound":
                raise
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    ssm.put_parameter(
        Name=name,
        Value=pem,
        Type="SecureString",
        Overwrite=True,
        Description="HistoLabel: private key for CloudFront signed cookies on slide data",
    )
    return _public(pem), True


def delete_signing_key(ssm: Any, settings: Settings) -> bool:
    try:
        ssm.delete_parameter(Name=parameter_name(settings))
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] != "ParameterNotFound":
            raise
        return False
