"""Authentication layer for the MCP endpoint: a bearer token from the Authorization header, validated every time."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.challenge import Challenges
from app.auth.events import AuthEvents
from app.auth.principal import Principal
from app.auth.tokens import EntraTokenValidator, InvalidTokenError, to_access_token, token_fingerprint

log = logging.getLogger("app.auth")

_FORM = b"application/x-www-form-urlencoded"


class AuthenticateBearer:
    """401 without a valid token; 400 when a token comes twice. Sessions never stand in for a token.

    On success the caller is stored where the SDK looks (`scope["user"]`, which it binds sessions to)
    and where the framework looks (`scope["state"]["principal"]`).
    """

    def __init__(
        self, app: ASGIApp, validator: EntraTokenValidator, challenges: Challenges, observer: AuthEvents
    ) -> None:
        self.app = app
        self.validator = validator
        self.challenges = challenges
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        presented = read_bearer(scope)
        if presented.refusal is not None:
            reason, description = presented.refusal
            self.observer.auth_failed(scope, reason, started)
            await self.challenges.invalid_request(send, description)
            return
        token = presented.token
        if not token:
            log.info("auth failed", extra={"reason": "no_token"})
            self.observer.auth_failed(scope, "no_token", started)
            await self.challenges.unauthorized(send, token_presented=presented.header_sent)
            return
        try:
            principal = await self.validator.validate(token)
        except InvalidTokenError as exc:
            log.info("auth failed", extra={"reason": exc.reason, "token": token_fingerprint(token)})
            self.observer.auth_failed(scope, exc.reason, started)
            await self.challenges.unauthorized(send, token_presented=True)
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("auth ok", extra={"principal": principal.key, "token": principal.token_id})
        self.observer.auth_succeeded(scope, principal)
        scope["user"], scope["auth"] = _sdk_identity(principal)
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class Presented:
    """What a request presents as its credential: a bearer token, or why the request is malformed (400)."""

    token: str | None = None
    header_sent: bool = False  # an Authorization header came, usable or not (RFC 6750: then the 401 says invalid)
    refusal: tuple[str, str] | None = None  # (reason for metrics and audit, description for the caller)


_ONLY_IN_HEADER = "send the access token only in the Authorization header"


def read_bearer(scope: Scope) -> Presented:
    """The token transport rules, one place for /mcp and FastAPI routes: one Authorization header, a token only
    there (OAuth 2.1 §5.1: never from the query string; next to a header token that is a malformed request), and
    never a form body (not MCP, and not a place a token may come from)."""
    values, content_types = _authorization_and_content_type(scope["headers"])
    if len(values) > 1:
        return Presented(refusal=("duplicate_authorization", "send exactly one Authorization header"))
    token = _bearer(values[0]) if values else None
    query = scope.get("query_string", b"")
    if token is not None and b"access_token" in query and "access_token" in parse_qs(query.decode("latin-1")):
        return Presented(refusal=("token_in_query", _ONLY_IN_HEADER))
    if content_types and _FORM in b"".join(content_types).lower():
        return Presented(refusal=("form_body", _ONLY_IN_HEADER))
    return Presented(token, bool(values))


@functools.lru_cache(maxsize=4096)
def _sdk_identity(principal: Principal) -> tuple[AuthenticatedUser, AuthCredentials]:
    """What the SDK reads from the scope, built once per validated token rather than once per request."""
    access = to_access_token(principal)
    return AuthenticatedUser(access), AuthCredentials(access.scopes)


def _authorization_and_content_type(headers: Iterable[tuple[bytes, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """Every Authorization and Content-Type value, in one pass over the headers."""
    authorization: list[bytes] = []
    content_type: list[bytes] = []
    for name, value in headers:
        if name == b"authorization":
            authorization.append(value)
        elif name == b"content-type":
            content_type.append(value)
    return authorization, content_type


def _bearer(value: bytes) -> str | None:
    """The token from `Bearer <token>` (scheme case-insensitive), else None."""
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token and " " not in token else None
