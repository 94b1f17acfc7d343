"""Entra-shaped access tokens, built and signed in one place: for the dev issuer, the pytest kit's `LocalIssuer` and
the tests' Entra stand-in, so all three mint what the validator (app/auth/tokens.py) sees from Entra.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from app.devissuer.signing import public_jwk


def access_token(
    key: rsa.RSAPrivateKey,
    *,
    issuer: str,
    audience: str,
    tenant: str,
    identity: Mapping[str, Any],
    lifetime: int = 3600,
    version: str = "2.0",
    client_app: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> str:
    """An RS256 access token as Entra issues it (`kid` = the key's RFC 7638 thumbprint).

    Args:
        key: The signing key; its public JWK is what the issuer's JWKS publishes.
        issuer: `iss`: `{instance}{tenant}/v2.0` (v2) or `https://sts.windows.net/{tenant}/` (v1).
        audience: `aud`: the client id (v2) or the App ID URI (v1).
        tenant: `tid`.
        identity: Who it stands for: `oid`, `sub`, and `scp` (delegated) or `roles` and `idtyp` (app-only), `name`.
        lifetime: Seconds from now until `exp`.
        version: `ver`, "2.0" or "1.0"; the calling app is `azp` in v2 and `appid` in v1.
        client_app: The calling app's client id, when it is named.
        overrides: Claims to set, or (with None) to remove, last.

    Example:
        >>> token = access_token(key, issuer=issuer, audience=client_id, tenant=tid, identity={"scp": "mcp.read"})
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "tid": tenant,
        "ver": version,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "uti": uuid.uuid4().hex[:22],
    }
    if client_app is not None:
        claims["azp" if version == "2.0" else "appid"] = client_app
    claims.update(identity)
    for name, value in (overrides or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": public_jwk(key)["kid"]})
