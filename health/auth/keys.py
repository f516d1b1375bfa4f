"""Signing keys (the development eID's and the authorization server's), from PEM files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc.jwk import ECKey, KeySet, RSAKey


@dataclass(frozen=True)
class SigningKey:
    key: ECKey | RSAKey
    algorithm: str  # ES256 or RS256
    kid: str

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS document: the public half only, with kid, use and alg."""
        public = self.key.as_dict(private=False)
        public.update(kid=self.kid, use="sig", alg=self.algorithm)
        return {"keys": [public]}

    def key_set(self) -> KeySet:
        return KeySet([self.key])


def load_signing_key(path: Path, *, create: bool) -> SigningKey:
    """The key in `path`; with `create`, an EC P-256 key is written there first if absent."""
    if create and not path.exists():
        _write_new_key(path)
    pem = path.read_bytes()
    private = load_pem_private_key(pem, password=None)
    key: ECKey | RSAKey
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        key, algorithm = ECKey.import_key(pem), "ES256"
    elif isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
        key, algorithm = RSAKey.import_key(pem), "RS256"
    else:
        raise ValueError(f"{path}: a signing key must be EC P-256 or RSA of 2048+ bits")
    return SigningKey(key=key, algorithm=algorithm, kid=key.thumbprint())


def _write_new_key(path: Path) -> None:
    """Write a fresh key so that concurrent workers agree on one: the first link wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ECKey.generate_key("P-256").as_pem(private=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, pem)
        os.close(descriptor)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
