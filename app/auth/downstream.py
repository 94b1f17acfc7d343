"""Calling other APIs as the user without token passthrough: MSAL on-behalf-of, with MSAL's token cache.

The caller's token is sent to exactly one place, Entra's token endpoint, as the OBO assertion. What comes back
is a token for the downstream API's audience; that is the only token a tool ever puts on an outgoing request.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mcp.server.mcpserver.exceptions import ToolError

from app.auth.assertion import AssertionUnavailable
from app.auth.principal import current_principal
from app.core.binding import bind
from app.core.hosts import is_loopback_host

log = logging.getLogger("app.downstream")

AssertionProvider = Callable[[], str]
# A client secret, MSAL's certificate dict, or `{"client_assertion": callable}` (a managed identity's assertion).
ClientCredential = str | dict[str, str] | dict[str, AssertionProvider]


class TokenSource(Protocol):
    """Where `downstream_token()` gets tokens: on-behalf-of over HTTP, the signed-in user's MSAL cache locally."""

    async def token(self, scopes: Sequence[str]) -> str: ...


class DownstreamAuthError(RuntimeError):
    """The token exchange failed; the message carries Entra's error code, never a token or secret."""


class ServerCredentialError(DownstreamAuthError, ToolError):
    """This server could not authenticate itself to Entra (its managed identity gave no assertion): an anticipated
    failure, so the tool's caller reads the message (what the operator should check) and no traceback is logged."""


def assertion_provider(credential: ClientCredential) -> AssertionProvider | None:
    """The callable of a `{"client_assertion": callable}` credential (a managed identity), else None."""
    provider = credential.get("client_assertion") if isinstance(credential, dict) else None
    return provider if callable(provider) else None


class OnBehalfOf:
    """One confidential client per tenant (multi-tenant servers exchange in the caller's tenant)."""

    def __init__(self, instance: str, client_id: str, credential: Callable[[], ClientCredential | None]) -> None:
        self._instance = instance.rstrip("/")
        self._client_id = client_id
        self._credential = credential
        self._cache = msal.TokenCache()  # shared across rebuilds, so a rotated secret keeps cached tokens
        self._apps: dict[str, tuple[str, msal.ConfidentialClientApplication]] = {}
        self._lock = threading.Lock()

    def _app(self, tenant: str) -> msal.ConfidentialClientApplication:
        credential = self._credential()
        if credential is None:
            raise DownstreamAuthError(
                "no managed identity, certificate or client secret is configured for on-behalf-of"
            )
        fingerprint = hashlib.sha256(repr(credential).encode()).hexdigest()
        with self._lock:
            cached = self._apps.get(tenant)
            if cached is None or cached[0] != fingerprint:  # first use, or the credential rotated: rebuild
                app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=credential,
                    authority=f"{self._instance}/{tenant}",
                    token_cache=self._cache,
                    # Instance discovery asks Microsoft's cloud about the authority; a loopback stand-in isn't there.
                    instance_discovery=not is_loopback_host(urlsplit(self._instance).hostname),
                )
                cached = self._apps[tenant] = (fingerprint, app)
            return cached[1]

    def _exchange(self, assertion: str, account_id: str, tenant: str, scopes: Sequence[str]) -> str:
        app = self._app(tenant)
        # MSAL's OBO pattern: the user's cached (or refreshable) token first, the exchange only on a miss.
        account = next((a for a in app.get_accounts() if a.get("home_account_id") == account_id), None)
        try:  # MSAL calls a managed identity's assertion provider per token request, and lets its error through
            result: dict[str, Any] | None = app.acquire_token_silent(list(scopes), account=account) if account else None
            if not result:
                result = app.acquire_token_on_behalf_of(assertion, list(scopes))
        except AssertionUnavailable as exc:
            raise ServerCredentialError(f"this server could not authenticate to Entra: {exc}") from None
        token = result.get("access_token") if result else None
        if not isinstance(token, str):
            code = (result or {}).get("error", "unknown_error")
            log.warning("on-behalf-of exchange failed", extra={"reason": code})
            raise DownstreamAuthError(f"the token exchange for the downstream API failed ({code})")
        return token

    async def token(self, scopes: Sequence[str]) -> str:
        """A downstream access token for the current caller; MSAL serves repeats from its cache."""
        principal = current_principal()
        if principal.is_app:
            raise DownstreamAuthError("on-behalf-of needs a user token; app-only callers have no user to act for")
        account_id = f"{principal.oid}.{principal.tid}"  # MSAL's home account id: Entra's uid.utid
        assertion = principal._assertion  # the one sanctioned use: the OBO assertion
        return await anyio.to_thread.run_sync(self._exchange, assertion, account_id, principal.tid, scopes)


_current: contextvars.ContextVar[TokenSource | None] = contextvars.ContextVar("on_behalf_of", default=None)


def using(client: TokenSource | None) -> bind[TokenSource | None]:
    """Make `client` the one `downstream_token()` uses, for the enclosed block."""
    return bind(_current, client)


async def downstream_token(scopes: Sequence[str]) -> str:
    """An access token for a downstream API, as the calling user (OAuth on-behalf-of; MSAL caches it).

    The escape hatch for scopes known only at call time (from settings, say): when they are fixed, take a
    `token: Annotated[str, Downstream(scopes=[...])]` parameter instead.

    Args:
        scopes: the downstream API's scopes, e.g. `["https://graph.microsoft.com/User.Read"]`.

    Returns:
        The access token, for an `Authorization: Bearer` header to that API (never the caller's own token).

    Raises:
        DownstreamAuthError: on-behalf-of is not configured, the caller is an app (no user to act for), or Entra
            refused the exchange; a tool that lets it propagate returns a tool error.

    Example:
        token = await downstream_token(ProfileApi().scopes)
    """
    client = _current.get()
    if client is None:
        raise DownstreamAuthError(
            "on-behalf-of is not configured: set AZUREAD__MANAGED_IDENTITY, a certificate or AZUREAD__CLIENT_SECRET"
        )
    return await client.token(scopes)


def certificate_credential(path: Path) -> dict[str, str]:
    """MSAL's certificate credential from one PEM holding the private key and the certificate."""
    pem = path.read_bytes()
    certificate = x509.load_pem_x509_certificate(pem)
    return {
        "private_key": pem.decode(),
        "thumbprint": certificate.fingerprint(hashes.SHA1()).hex(),  # noqa: S303  # Entra's x5t is SHA-1
        "public_certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }
