"""OpenID Connect for the dev issuer's sign-in: ID tokens and `client_info`, shaped like Entra's v2 endpoint's.

MSAL builds its account (and its cache keys) from these: `client_info` gives the home account id `{oid}.{tid}`.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from html import escape
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import HTMLResponse

from app.authserver.protocol import origin
from app.devissuer.rules import DevUser


class IdTokens:
    """Signs ID tokens with the issuer's key (the JWKS the discovery document names)."""

    def __init__(self, key: rsa.RSAPrivateKey, kid: str, issuer: str, tenant: str) -> None:
        self.key, self.kid, self.issuer, self.tenant = key, kid, issuer, tenant

    def id_token(self, user: DevUser, audience: str, nonce: str | None, lifetime: int = 3600) -> str:
        """An ID token for `user`, issued to the client `audience`; `nonce` echoed as the request sent it."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "tid": self.tenant,
            "ver": "2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": user.sub,
            "oid": user.oid,
            "name": user.name,
            "preferred_username": user.username,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def client_info(self, user: DevUser) -> str:
        """Entra's `client_info` (sent when the token request has `client_info=1`): base64url of uid and utid."""
        raw = json.dumps({"uid": user.oid, "utid": self.tenant}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def form_post(redirect_uri: str, answer: dict[str, str]) -> HTMLResponse:
    """OAuth 2.0 Form Post Response Mode (what MSAL asks for): the browser posts the code to the redirect URI.

    One inline script, allowed by its nonce, submits the form; the form may post only to the client's origin."""
    nonce = secrets.token_urlsafe(16)
    fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in answer.items())
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signing in</title></head><body>'
        f'<form method="post" action="{escape(redirect_uri)}">{fields}<noscript><button>Continue</button></noscript>'
        f'</form><script nonce="{nonce}">document.forms[0].submit()</script></body></html>'
    )
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action {origin(redirect_uri)}"
    )
    headers = {"content-security-policy": csp, "referrer-policy": "no-referrer", "cache-control": "no-store"}
    return HTMLResponse(html, headers=headers)
