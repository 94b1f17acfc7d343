"""Authorization: who may use which tool, resource or prompt, answered in HTTP before the SDK dispatches.

`ParseOperation` (app/auth/operation.py) has classified the request; this layer refuses what is malformed or
unknown, and answers 403 step-up when the caller lacks what any of the request's targets needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mcp.shared.uri_template import UriTemplate
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.challenge import Challenges
from app.auth.events import AuthEvents
from app.auth.operation import Target, operation_from_scope, parsed_message
from app.auth.principal import Principal, principal_from_scope
from app.catalog.registry import Catalog, Requirement
from app.core.asgi import jsonrpc_error, send_json

log = logging.getLogger("app.authz")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scopes: tuple[str, ...] = ()  # everything the operation needs, in the form clients request from Entra
    reason: str = ""


ALLOWED = Decision(True)  # one shared instance: a frozen dataclass costs a microsecond to build, per request


class Guard:
    """Decides from a principal and a requirement; knows every target's requirement up front."""

    def __init__(self, catalog: Catalog, base_scopes: Iterable[str], base_roles: Iterable[str], scope_uri: Any) -> None:
        self._by_name: dict[tuple[str, str], Requirement] = {
            (s.kind, s.uri or s.name): s.requirement for s in catalog.specs
        }
        self._templates = [
            (UriTemplate.parse(s.uri or ""), s.requirement) for s in catalog.of("resource") if "{" in (s.uri or "")
        ]
        self._base = Requirement(frozenset(base_scopes), frozenset(base_roles))
        self._scope_uri = scope_uri

    def requirement(self, kind: str, target: str) -> Requirement | None:
        found = self._by_name.get((kind, target))
        if found is None and kind == "resource":
            found = next((req for template, req in self._templates if template.match(target) is not None), None)
        return found

    def decide(self, principal: Principal, requirement: Requirement | None) -> Decision:
        """Delegated callers need the base scopes plus the target's scopes; app callers its roles."""
        req = requirement or Requirement(public=True)
        if principal.is_app:
            needed_roles = self._base.roles | req.roles
            if (req.public or req.roles) and needed_roles <= principal.roles:
                return ALLOWED
            return Decision(False, reason=f"requires app role(s): {', '.join(sorted(needed_roles)) or 'none declared'}")
        needed = self._base.scopes | req.scopes
        if (req.public or req.scopes) and needed <= principal.scopes:
            return ALLOWED
        wanted = tuple(self._scope_uri(s) for s in sorted(needed))
        if req.scopes or req.public:
            return Decision(False, wanted, f"requires scope(s): {', '.join(sorted(needed))}")
        return Decision(False, (), f"requires app role(s): {', '.join(sorted(req.roles))}")

    def decide_all(self, principal: Principal, targets: tuple[Target, ...]) -> Decision:
        """Every target must be allowed (no target: the base requirement); a refusal names every scope the request
        needs, so one step-up suffices."""
        if not targets:
            return self.decide(principal, None)
        refused = [d for d in (self.decide(principal, self.requirement(*t)) for t in targets) if not d.allowed]
        if len(refused) <= 1:
            return refused[0] if refused else ALLOWED
        scopes = tuple(sorted({s for d in refused for s in d.scopes}))
        return Decision(False, scopes, "; ".join(dict.fromkeys(d.reason for d in refused)))

    def allows(self, principal: Principal, kind: str, target: str) -> bool:
        return self.decide(principal, self.requirement(kind, target)).allowed


class AuthorizeOperation:
    """Refuses, before any handler runs: what `ParseOperation` could not classify (400), and a caller without what
    one of the request's targets needs (403 step-up naming every scope the request needs)."""

    def __init__(self, app: ASGIApp, guard: Guard, challenges: Challenges, observer: AuthEvents) -> None:
        self.app = app
        self.guard = guard
        self.challenges = challenges
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_from_scope(scope)
        if scope["type"] != "http" or principal is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        operation = operation_from_scope(scope)
        if operation is not None and operation.refusal is not None:
            refusal = operation.refusal
            log.info("request refused before dispatch", extra={"principal": principal.key, "reason": refusal.reason})
            self.observer.authz_denied(scope, principal, parsed_message(), None, refusal.reason, started)
            await send_json(send, refusal.status, jsonrpc_error(refusal.code, refusal.message, operation.request_id))
            return
        targets = operation.targets if operation is not None else ()
        decision = self.guard.decide_all(principal, targets)
        if not decision.allowed:
            target = targets[0][1] if targets else None
            log.info(
                "authz denied",
                extra={"principal": principal.key, "target": target, "reason": "insufficient_scope"},
            )
            self.observer.authz_denied(scope, principal, parsed_message(), target, decision.reason, started)
            await self.challenges.insufficient_scope(send, decision.scopes, decision.reason)
            return
        await self.app(scope, receive, send)
