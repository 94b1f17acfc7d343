"""A throwaway RSA key pair and RS256 tokens for the auth baselines (b) and (c)."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.servers.common import AUDIENCE, ISSUER, SCOPE


class BenchKeys:
    """Generates a 2048-bit key, writes the public half to `out_dir`, mints tokens."""

    def __init__(self, out_dir: Path) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.public_key_file = out_dir / "bench_public_key.pem"
        pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_file.write_bytes(pem)

    def token(self, lifetime_s: int = 3600, subject: str = "bench-user") -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": subject,
            "azp": "bench-client",
            "scope": SCOPE,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_s,
        }
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": "bench"})
