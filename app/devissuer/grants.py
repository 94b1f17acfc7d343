"""The dev issuer's grants: authorization codes and refresh tokens.

Codes live 60 seconds, are single-use and bound to the client, redirect URI, PKCE challenge, app (the server its
tokens are for), resource and grant.
Refresh tokens (only when `offline_access` was granted, as at Entra) are opaque, bound the same way, and rotated on
every use; a replayed code or refresh token revokes everything issued from that sign-in. Only hashes are kept.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from app.auth.oauth_errors import OAuthError
from app.authserver.protocol import fingerprint
from app.devissuer.config import DevApp
from app.devissuer.rules import DevUser, parse_scopes

CODE_SECONDS = 60
REFRESH_SECONDS = 24 * 3600
MAX_GRANTS = 10_000  # per kind; the issuer's endpoints are throttled per IP anyway


@dataclass(frozen=True)
class Grant:
    """What a code or refresh token stands for. `family` ties together everything issued from one sign-in."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    app: DevApp  # the app (server) its tokens are for: their `aud`, their scopes' App ID URI
    resource: str | None
    scopes: tuple[str, ...]  # short names granted
    roles: tuple[str, ...]
    user: DevUser
    offline: bool
    family: str = field(default_factory=lambda: secrets.token_hex(8))
    openid: bool = False  # `openid` was requested: the token response carries an ID token
    nonce: str | None = None  # the authorization request's OpenID Connect nonce


class GrantStore:
    """Codes and refresh tokens by hash: single use, expiring, replay revokes the family."""

    def __init__(self) -> None:
        self._codes: dict[str, tuple[Grant, float]] = {}
        self._refresh: dict[str, tuple[Grant, float]] = {}
        self._spent: dict[str, tuple[str, float]] = {}  # hash of a used code or rotated refresh token -> family
        self._revoked: set[str] = set()
        self._next_sweep = time.monotonic() + CODE_SECONDS

    def issue_code(self, grant: Grant) -> str:
        return self._put(self._codes, grant, CODE_SECONDS)

    def issue_refresh(self, grant: Grant) -> str:
        return self._put(self._refresh, grant, REFRESH_SECONDS)

    def redeem_code(self, code: str) -> Grant:
        """The code's grant; the code is used up whatever follows (a wrong verifier too)."""
        return self._take(self._codes, code, "authorization code", lambda grant: grant)[0]

    def redeem_refresh(self, token: str, check: Callable[[Grant], Grant]) -> tuple[Grant, Grant]:
        """The token's grant and what `check` makes of it; the token is rotated out only if `check` passes, so a
        refused request (a wider scope, say) leaves the sign-in usable."""
        return self._take(self._refresh, token, "refresh token", check)

    def _put(self, table: dict[str, tuple[Grant, float]], grant: Grant, lifetime: int) -> str:
        now = time.monotonic()
        if len(table) >= MAX_GRANTS or now >= self._next_sweep:
            self._sweep(now)
        if len(table) >= MAX_GRANTS:
            raise OAuthError("temporarily_unavailable", "too many outstanding grants; retry later", 503)
        secret = secrets.token_urlsafe(32)
        table[fingerprint(secret)] = (grant, now + lifetime)
        return secret

    def _take(
        self, table: dict[str, tuple[Grant, float]], secret: str, what: str, check: Callable[[Grant], Grant]
    ) -> tuple[Grant, Grant]:
        key, now = fingerprint(secret), time.monotonic()
        found = table.get(key)
        if found is None:
            spent = self._spent.get(key)
            if spent is not None:
                self._revoke(spent[0])
                raise OAuthError(
                    "invalid_grant", f"this {what} was already used; everything issued from its sign-in is revoked"
                )
            raise OAuthError("invalid_grant", f"unknown or expired {what}")
        grant, expires = found
        if expires < now or grant.family in self._revoked:
            del table[key]
            raise OAuthError("invalid_grant", f"the {what} has expired or was revoked")
        checked = check(grant)  # may refuse: then the secret stays as it was
        del table[key]  # single use: gone from here on, whatever follows
        self._spent[key] = (grant.family, now + REFRESH_SECONDS)
        return grant, checked

    def _revoke(self, family: str) -> None:
        self._revoked.add(family)
        for key in [k for k, (grant, _) in self._refresh.items() if grant.family == family]:
            del self._refresh[key]

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + CODE_SECONDS
        for table in (self._codes, self._refresh):
            for key in [k for k, (_, expires) in table.items() if expires < now]:
                del table[key]
        for key in [k for k, (_, expires) in self._spent.items() if expires < now]:
            del self._spent[key]


def narrowed(grant: Grant, scope: str | None) -> Grant:
    """A refresh may ask for fewer of the granted scopes (never more, nor another app's)."""
    if scope is None:
        return grant
    names, default, _ = parse_scopes(scope, grant.app)
    wanted = grant.scopes if default else names
    if not set(wanted) <= set(grant.scopes):
        raise OAuthError("invalid_scope", "a refresh may not ask for scopes the sign-in did not grant")
    return replace(grant, scopes=tuple(wanted))
