"""The dev issuer's signing key: one RSA key under DEV_ISSUER__KEY_DIR (`.dev/`), created once (mode 0600) and
published atomically so concurrent first starts agree on it, and its public JWK (kid = RFC 7638 thumbprint)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.core.startup import StartupError


class DevKeyError(StartupError):
    """The dev signing key file exists but is not a usable RSA private key."""


def load_or_create_key(key_dir: Path) -> rsa.RSAPrivateKey:
    """The dev signing key, created once and kept (mode 0600) so tokens survive restarts."""
    path = key_dir / "dev-issuer-key.pem"
    key = _load_key(path)
    if key is None:
        _publish_new_key(path)
        key = _load_key(path)
    if key is None:
        raise DevKeyError(f"{path} does not hold an RSA private key: delete it, and a new one is made")
    return key


def _load_key(path: Path) -> rsa.RSAPrivateKey | None:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:  # not a PEM key at all (say, cut short): refused below, like any other non-RSA content
        return None
    return key if isinstance(key, rsa.RSAPrivateKey) else None


def _publish_new_key(path: Path) -> None:
    """Write a fresh key to `path` unless another process got there first.

    On a fresh checkout two first starts can race (the server's embedded issuer and `make token`, or the bench's
    issuer and its token mint). Each writes a private file, and `os.link` publishes it whole and only if no key is
    there yet, so every process then loads the one key on disk instead of signing or verifying with its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    draft = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink()


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    n, e = b64(numbers.n), b64(numbers.e)
    kid = base64.urlsafe_b64encode(hashlib.sha256(f'{{"e":"{e}","kty":"RSA","n":"{n}"}}'.encode()).digest())
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid.rstrip(b"=").decode(), "n": n, "e": e}
