"""Calling other APIs as the user without token passthrough: MSAL on-behalf-of, with MSAL's token cache.

The caller's token is sent to exactly one place, Entra's token endpoint, as the OBO assertion. What comes back
is a token for the downstream API's audience; that is the only token a tool ever puts on an outgoing request.

When Entra refuses the exchange in a way the user can fix (consent, Conditional Access: app/auth/consent.py), the
error says so: `ConsentRequired` when a `ConsentRecovery` (the connect page) can offer the user the fix, which
`begin_consent` / `finish_consent` then carry out as this server's own sign-in, into the same MSAL cache.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import msal
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST

from app.auth.assertion import AssertionUnavailable
from app.auth.consent import ConsentNeed, ConsentRecovery, claims_challenge, user_action
from app.auth.principal import current_principal
from app.core.binding import bind
from app.core.hosts import is_loopback_host

log = logging.getLogger("app.downstream")
# The connect page's sign-in answers by query, deliberately: its browser-binding cookie is SameSite=Lax, which a
# cross-site form post would not carry; the code is single-use, PKCE-bound, and kept out of logs and referrers.
warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended", category=UserWarning)

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


class UserActionRequired(DownstreamAuthError, ToolError):
    """Entra wants the user (consent, Conditional Access) and this server has no way to ask them (CONNECT__ENABLED is
    off): an anticipated failure, a tool error that says what to do, with no traceback."""


class ConsentRequired(DownstreamAuthError, MCPError):
    """Entra wants the user, and `recovery` can offer them the fix: an `MCPError`, so the SDK's tool runner lets it
    through to `AskClient` (app/server/ask.py), which asks the client with a URL-mode elicitation."""

    def __init__(self, need: ConsentNeed, recovery: ConsentRecovery) -> None:
        message = f"the user must first allow this server to call the downstream API ({need.reason})"
        MCPError.__init__(self, code=INVALID_REQUEST, message=message)
        self.need, self.recovery = need, recovery


def assertion_provider(credential: ClientCredential) -> AssertionProvider | None:
    """The callable of a `{"client_assertion": callable}` credential (a managed identity), else None."""
    provider = credential.get("client_assertion") if isinstance(credential, dict) else None
    return provider if callable(provider) else None


class OnBehalfOf:
    """One confidential client per tenant (multi-tenant servers exchange in the caller's tenant)."""

    def __init__(
        self,
        instance: str,
        client_id: str,
        credential: Callable[[], ClientCredential | None],
        recovery: ConsentRecovery | None = None,
    ) -> None:
        self.recovery = recovery  # how a user who must consent is asked (the connect page); None: a tool error
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
                cached = self._apps[tenant] = (fingerprint, self._build(tenant, credential, self._cache))
            return cached[1]

    def _build(
        self, tenant: str, credential: ClientCredential, cache: msal.TokenCache
    ) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=credential,
            authority=f"{self._instance}/{tenant}",
            token_cache=cache,
            # Instance discovery asks Microsoft's cloud about the authority; a loopback stand-in isn't there.
            instance_discovery=not is_loopback_host(urlsplit(self._instance).hostname),
        )

    def _exchange(self, assertion: str, account_id: str, tenant: str, scopes: Sequence[str], client: str) -> str:
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
        if isinstance(token, str):
            return token
        code = str((result or {}).get("error", "unknown_error"))[:60]
        reason = user_action(result or {})
        log.warning("on-behalf-of exchange failed", extra={"reason": code, "user_action": reason})
        if reason is None:
            raise DownstreamAuthError(f"the token exchange for the downstream API failed ({code})")
        user = account_id.split(".", 1)[0]
        need = ConsentNeed(tenant, user, tuple(scopes), reason, claims_challenge(result or {}), client)
        if self.recovery is not None:
            raise ConsentRequired(need, self.recovery)
        raise UserActionRequired(
            f"the user must first allow this server to call the downstream API ({reason}), and this server cannot "
            "ask them (its connect page is off): an administrator can grant consent for the organization"
        )

    def begin_consent(
        self, tenant: str, scopes: Sequence[str], claims: str | None, redirect_uri: str
    ) -> dict[str, Any]:
        """MSAL's auth code flow (PKCE, state, nonce) for this server's own sign-in of the user, in `tenant`, for the
        downstream `scopes` (and Entra's `claims` challenge); `flow["auth_uri"]` is where the browser goes. Keep the
        flow server-side: it holds the PKCE verifier. Blocking (discovery): run it off the event loop."""
        try:
            app = self._app(tenant)
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                list(scopes), redirect_uri=redirect_uri, claims_challenge=claims
            )
        except DownstreamAuthError:
            raise
        except Exception as exc:  # Entra's discovery unreachable (requests' errors), say: no traceback
            log.warning("connect sign-in could not start", extra={"error": type(exc).__name__})
            raise DownstreamAuthError("Entra could not be reached to start the sign-in") from None
        return flow

    def finish_consent(self, tenant: str, user: str, flow: dict[str, Any], response: dict[str, str]) -> str:
        """Redeem the code of `begin_consent`'s flow; keep the tokens only when the user who signed in is `user` of
        `tenant` (the one who was asked). Returns "stored", "other_user", or Entra's (or MSAL's) error code."""
        credential = self._credential()
        if credential is None:
            return "no_client_credential"
        captured = _Captured()  # nothing reaches the shared cache until the user is known
        try:
            app = self._build(tenant, credential, captured)
            result = app.acquire_token_by_auth_code_flow(flow, response)
        except AssertionUnavailable:
            return "server_credential"
        except (ValueError, RuntimeError):  # state or nonce mismatch: MSAL's text names them, so it is not kept
            return "invalid_response"
        except Exception as exc:  # Entra unreachable (requests' errors): a clear answer, no traceback
            log.warning("connect sign-in could not be redeemed", extra={"error": type(exc).__name__})
            return "temporarily_unavailable"
        if not isinstance(result, dict) or "access_token" not in result:
            return str((result or {}).get("error", "unknown_error"))[:60]
        claims = result.get("id_token_claims") or {}
        if claims.get("aud") != self._client_id or claims.get("tid") != tenant or claims.get("oid") != user:
            return "other_user"
        for event in captured.events:  # MSAL debug-logs what it adds: the used code and verifier stay out of it
            data = {k: v for k, v in (event.get("data") or {}).items() if k not in ("code", "code_verifier")}
            self._cache.add(dict(event, data=data))
        return "stored"

    async def token(self, scopes: Sequence[str]) -> str:
        """A downstream access token for the current caller; MSAL serves repeats from its cache."""
        principal = current_principal()
        if principal.is_app:
            raise DownstreamAuthError("on-behalf-of needs a user token; app-only callers have no user to act for")
        account_id = f"{principal.oid}.{principal.tid}"  # MSAL's home account id: Entra's uid.utid
        assertion = principal._assertion  # the one sanctioned use: the OBO assertion
        exchange = functools.partial(self._exchange, assertion, account_id, principal.tid, scopes, principal.client_id)
        return await anyio.to_thread.run_sync(exchange)


class _Captured(msal.TokenCache):  # type: ignore[misc]  # msal is untyped
    """A token cache that holds one redemption's token events instead of storing them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any], now: Any = None) -> None:
        self.events.append(event)


_current: contextvars.ContextVar[TokenSource | None] = contextvars.ContextVar("on_behalf_of", default=None)


def use_for_request(client: TokenSource | None) -> None:
    """Make `client` the one `downstream_token()` uses for the rest of this request (a route; see `using`)."""
    _current.set(client)


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
