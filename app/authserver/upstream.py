"""The upstream authorization server (Entra, or the dev issuer in development), with this server as its confidential
client: its own PKCE and state, AZUREAD__CLIENT_SECRET from the secret store (Key Vault like other secrets).

Plain form posts, not MSAL: MSAL's auth-code flow wants an OpenID `id_token` and an https authority, and here only
the access token for this server (audience = this server) and the refresh token are wanted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx2
from pydantic import SecretStr

from app.settings import Settings

log = logging.getLogger("app.authserver")


class UpstreamError(RuntimeError):
    """The upstream refused or could not be reached; the message is its `error` code only."""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Upstream:
    def __init__(
        self, settings: Settings, http: httpx2.AsyncClient, secret: Callable[[], SecretStr | None], callback: str
    ) -> None:
        base = f"{settings.instance}{settings.tenant_id}/oauth2/v2.0"
        self.authorize_endpoint, self.token_endpoint = f"{base}/authorize", f"{base}/token"
        self.client_id = settings.client_id
        self.http = http
        self.secret = secret
        self.callback = callback

    def authorize_url(self, state: str, challenge: str, scope: str) -> str:
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": self.callback,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.authorize_endpoint}?{urlencode(query)}"

    async def redeem(self, code: str, verifier: str, scope: str) -> dict[str, Any]:
        params = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "scope": scope}
        return await self._token(params | {"redirect_uri": self.callback})

    async def refresh(self, refresh_token: str, scope: str) -> dict[str, Any]:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope})

    async def _token(self, params: dict[str, str]) -> dict[str, Any]:
        secret = self.secret()
        if secret is None:
            raise UpstreamError("no_client_secret")
        form = params | {"client_id": self.client_id, "client_secret": secret.get_secret_value()}
        try:
            response = await self.http.post(self.token_endpoint, data=form, headers={"accept": "application/json"})
            body = response.json()
        except (httpx2.HTTPError, ValueError) as exc:
            log.warning("upstream token request failed", extra={"error": type(exc).__name__})
            raise UpstreamError("temporarily_unavailable") from None
        if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            code = error if isinstance(error, str) and error.isidentifier() else "invalid_grant"
            log.warning("upstream refused the token request", extra={"reason": code[:40]})
            raise UpstreamError(code[:40])
        return body
