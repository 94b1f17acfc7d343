"""FastAPI dependencies for routes beside MCP: the same token rules, validator, challenges and audit as `/mcp`.

    from app import Caller, requires

    @router.get("/api/reports", dependencies=[requires(scopes=["reports.read"], roles=["reports.read.all"])])
    async def reports(caller: Caller) -> list[Report]: ...

`Caller` authenticates (401 / 400); `requires(...)` authorizes as a tool's decorator does (403 step-up naming the
scopes): users need the scopes, app-only callers the roles, and both need MCP__REQUIRED_SCOPES / _ROLES. A route
that is deliberately open says so with `dependencies=[Depends(public)]`; a route with neither fails startup.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuth2, OAuthFlowAuthorizationCode, OAuthFlows
from fastapi.responses import JSONResponse
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.types import Scope

from app.auth.authz import Guard
from app.auth.challenge import Answer, Challenges
from app.auth.events import AuthEvents
from app.auth.middleware import read_bearer
from app.auth.principal import Principal
from app.auth.tokens import EntraTokenValidator, InvalidTokenError, token_fingerprint
from app.catalog.registry import Requirement

log = logging.getLogger("app.auth")

SCHEME_NAME = "entra"


class AttemptThrottle(Protocol):
    """The per-IP budget for traffic that does not authenticate (implemented in app/edge/route_throttle.py)."""

    async def admit(self, scope: Scope) -> int | None: ...  # None to go on, else Retry-After seconds

    async def failed(self, scope: Scope) -> None: ...


@dataclass(frozen=True)
class RouteAuth:
    """What the route dependencies use, built once by the composition root (`app.state.route_auth`)."""

    validator: EntraTokenValidator
    challenges: Challenges
    guard: Guard
    observer: AuthEvents
    throttle: AttemptThrottle


class AuthProblem(Exception):
    """An auth failure on a route: answered as `/mcp` answers it (status, JSON body, `WWW-Authenticate`)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.get("error", "auth"))
        self.answer = answer


async def answer_auth_problem(_: Request, exc: Exception) -> JSONResponse:
    """The exception handler the composition root registers for `AuthProblem`."""
    assert isinstance(exc, AuthProblem)
    answer = exc.answer
    return JSONResponse(answer.body, answer.status, headers={**dict(answer.headers), "cache-control": "no-store"})


class EntraBearer(SecurityBase):
    """Authenticates a route's caller from the Authorization header; the OpenAPI OAuth2 scheme for routes.

    A `SecurityBase`, so FastAPI lists it (and every scope `requires` adds) in the OpenAPI schema; the flow's
    URLs and scopes are filled in per app when the schema is built (app/api/openapi.py).
    """

    def __init__(self) -> None:
        flow = OAuthFlowAuthorizationCode(authorizationUrl="/authorize", tokenUrl="/token", scopes={})
        self.model = OAuth2(flows=OAuthFlows(authorizationCode=flow), description="Microsoft Entra ID")
        self.scheme_name = SCHEME_NAME

    async def __call__(self, request: Request) -> Principal:
        known = getattr(request.state, "principal", None)
        if isinstance(known, Principal):  # already authenticated for this request (another dependency asked)
            return known
        auth = route_auth(request)
        scope, started = request.scope, time.perf_counter()
        if (retry_after := await auth.throttle.admit(scope)) is not None:
            raise AuthProblem(too_many(retry_after))
        presented = read_bearer(scope)
        if presented.refusal is not None:
            reason, description = presented.refusal
            await self._failed(auth, scope, reason, started)
            raise AuthProblem(auth.challenges.invalid_request_answer(description))
        if not presented.token:
            log.info("auth failed", extra={"reason": "no_token"})
            await self._failed(auth, scope, "no_token", started)
            raise AuthProblem(auth.challenges.unauthorized_answer(presented.header_sent))
        try:
            principal = await auth.validator.validate(presented.token)
        except InvalidTokenError as exc:
            log.info("auth failed", extra={"reason": exc.reason, "token": token_fingerprint(presented.token)})
            await self._failed(auth, scope, exc.reason, started)
            raise AuthProblem(auth.challenges.unauthorized_answer(token_presented=True)) from None
        auth.observer.auth_succeeded(scope, principal)
        request.state.principal = principal
        return principal

    @staticmethod
    async def _failed(auth: RouteAuth, scope: Scope, reason: str, started: float) -> None:
        auth.observer.auth_failed(scope, reason, started)
        await auth.throttle.failed(scope)


authenticated = EntraBearer()
"""The dependency that authenticates a route's caller: `Depends(authenticated)`, or the `Caller` alias."""

Caller = Annotated[Principal, Depends(authenticated)]
"""A route parameter `caller: Caller` is the authenticated caller (401 / 400 otherwise)."""


class Requires:
    """Authorizes the authenticated caller for the scopes of the `Security(...)` it is used in, or its roles."""

    def __init__(self, roles: Iterable[str] = ()) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, request: Request, security_scopes: SecurityScopes, caller: Caller) -> Principal:
        auth, started = route_auth(request), time.perf_counter()
        decision = auth.guard.decide(caller, Requirement(frozenset(security_scopes.scopes), self.roles))
        route = route_template(request)
        auth.observer.route_access(request.scope, caller, route, decision.reason or None, started)
        if not decision.allowed:
            log.info("authz denied", extra={"principal": caller.key, "target": route, "reason": "insufficient_scope"})
            raise AuthProblem(auth.challenges.insufficient_scope_answer(decision.scopes, decision.reason))
        return caller


def requires(scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> Any:
    """A guard: users need all `scopes`, app-only callers all `roles` (as `@tool(scopes=..., roles=...)`).

    Use it in `dependencies=[...]`, or as a parameter type: `caller: Annotated[Principal, requires(scopes=["x"])]`.
    """
    if isinstance(scopes, str) or isinstance(roles, str):
        raise TypeError("scopes and roles are lists of names, e.g. requires(scopes=['files.read'])")
    scopes, roles = list(scopes), list(roles)
    if not scopes and not roles:
        raise TypeError("requires() needs scopes or roles; for any authenticated caller use `Caller`")
    return Security(Requires(roles), scopes=scopes)


def public() -> None:
    """Marks a route as open to anyone, without a token: `dependencies=[Depends(public)]` (logged at startup)."""


def too_many(retry_after: int) -> Answer:
    """429 for an IP whose budget for failed authentication is spent."""
    body = {"error": "rate_limited", "error_description": "too many requests that did not authenticate; retry later"}
    return Answer(429, body, [("retry-after", str(retry_after))])


def route_auth(request: Request) -> RouteAuth:
    auth = getattr(request.app.state, "route_auth", None)
    if not isinstance(auth, RouteAuth):  # a router mounted on an app this framework did not build
        raise RuntimeError("route auth is not configured: serve routes through app.main.create_app")
    return auth


def route_template(request: Request) -> str:
    """The matched route's path template (`/api/items/{item_id}`): the server's text, not the caller's."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path
