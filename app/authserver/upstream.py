"""The upstream authorization server (Entra, or the dev issuer in development), with an MCP server of this app as its
confidential client: its own PKCE and state. One `Upstream` per server: its app registration's client id and its
credential, the one on-behalf-of uses: AZUREAD__MANAGED_IDENTITY (the managed identity's token as the client assertion,
through a federated identity credential), else AZUREAD__CLIENT_CERTIFICATE_PATH (a signed client assertion, RFC 7523,
as Entra takes it), else AZUREAD__CLIENT_SECRET from the secret store (Key Vault like other secrets, re-read on
rotation); SERVERS__{KEY}__CLIENT_CERTIFICATE_PATH / __CLIENT_SECRET for each more server.

Plain form posts, not MSAL: MSAL's auth-code flow wants an OpenID `id_token` and an https authority, and here only
the access token for this server (audience = this server) and the refresh token are wanted.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

import anyio
import httpx2
import jwt

from app.auth.assertion import AssertionUnavailable
from app.auth.downstream import ClientCredential, assertion_provider

log = logging.getLogger("app.authserver")


class UpstreamError(RuntimeError):
    """The upstream refused or could not be reached; the message is its `error` code only."""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Upstream:
    def __init__(
        self,
        authority: str,
        client_id: str,
        http: httpx2.AsyncClient,
        credential: Callable[[], ClientCredential | None],
        callback: str,
    ) -> None:
        """`authority`: `{instance}{tenant}`, whose `/oauth2/v2.0` endpoints sign users in."""
        base = f"{authority}/oauth2/v2.0"
        self.authorize_endpoint, self.token_endpoint = f"{base}/authorize", f"{base}/token"
        self.client_id = client_id
        self.http = http
        self.credential = credential
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
        credential = self.credential()
        if credential is None:
            raise UpstreamError("no_client_credential")
        form = params | {"client_id": self.client_id} | await self._authentication(credential)
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

    async def _authentication(self, credential: ClientCredential) -> dict[str, str]:
        if isinstance(credential, str):
            return {"client_secret": credential}
        if (provider := assertion_provider(credential)) is not None:
            try:  # azure-identity blocks: off the event loop; the provider logged what failed
                assertion = await anyio.to_thread.run_sync(provider)
            except AssertionUnavailable:
                raise UpstreamError("temporarily_unavailable") from None
        else:
            assertion = client_assertion(cast(dict[str, str], credential), self.client_id, self.token_endpoint)
        return {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}  # fmt: skip


def client_assertion(certificate: dict[str, str], client_id: str, audience: str) -> str:
    """RFC 7523 client authentication as Entra takes it: RS256, `x5t` = base64url SHA-1 thumbprint, 10 minutes."""
    now = int(time.time())
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": secrets.token_hex(16), "nbf": now,
              "iat": now, "exp": now + 600}  # fmt: skip
    x5t = base64.urlsafe_b64encode(bytes.fromhex(certificate["thumbprint"])).rstrip(b"=").decode()
    return jwt.encode(claims, certificate["private_key"], algorithm="RS256", headers={"x5t": x5t})
