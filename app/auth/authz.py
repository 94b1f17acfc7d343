"""Authorization: who may use which tool, resource or prompt, answered in HTTP before the SDK dispatches."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server import _streamable_http_modern
from mcp.shared.uri_template import UriTemplate
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.challenge import Challenges
from app.auth.events import AuthEvents
from app.auth.principal import Principal, principal_from_scope
from app.catalog.registry import Catalog, Requirement
from app.core.asgi import jsonrpc_error, send_json

log = logging.getLogger("app.authz")

# JSON-RPC method -> (catalog kind, params key naming the target)
_GUARDED = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
    "resources/subscribe": ("resource", "uri"),  # watching a resource needs what reading it needs
}
INVALID_REQUEST = -32600
PARSE_ERROR = -32700
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")  # where a surrogate escape could be
# The body this request's authorization parsed, and what it parsed to (see `_ParsedOnce`).
_PARSED: ContextVar[tuple[bytes, Any] | None] = ContextVar("authorized_body", default=None)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    scopes: tuple[str, ...] = ()  # everything the operation needs, in the form clients request from Entra
    reason: str = ""


ALLOWED = Decision(True)  # one shared instance: a frozen dataclass costs a microsecond to build, per request


@dataclass(frozen=True, slots=True)
class Operation:
    """The parsed JSON-RPC message of this request, kept in `scope["state"]` so later layers never re-parse."""

    method: str | None
    request_id: Any = None
    kind: str | None = None  # tool / prompt / resource, for guarded methods
    target: str | None = None

    @property
    def tool(self) -> str | None:
        return self.target if self.kind == "tool" else None


def operation_from_scope(scope: Scope) -> Operation | None:
    state = scope.get("state")
    operation = state.get("operation") if isinstance(state, dict) else None
    return operation if isinstance(operation, Operation) else None


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

    def allows(self, principal: Principal, kind: str, target: str) -> bool:
        return self.decide(principal, self.requirement(kind, target)).allowed


class AuthorizeOperation:
    """Reads the body once (LimitBody has capped it), refuses batches, and answers 403 step-up before any tool runs."""

    def __init__(self, app: ASGIApp, guard: Guard, challenges: Challenges, observer: AuthEvents) -> None:
        self.app = app
        self.guard = guard
        self.challenges = challenges
        self.observer = observer
        # The SDK's 2026-07-28 transport parses bodies with `json`: hand it ours (see _ParsedOnce).
        _streamable_http_modern.json = _PARSED_ONCE  # type: ignore[attr-defined,assignment]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_from_scope(scope)
        if scope["type"] != "http" or principal is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if scope["method"] != "POST":
            await self._decide(principal, None, None, scope, receive, send, started)
            return
        body = await _read_body(receive)
        message = _parse(body)
        if _SURROGATE_ESCAPE.search(body) is not None and _has_lone_surrogate(message):
            # json accepts "\ud800" alone; UTF-8 (logs, audit, downstream calls) cannot carry it. The SDK's own
            # parser refuses it on some paths only: refuse it on all, before anything reads it.
            await send_json(send, 400, jsonrpc_error(PARSE_ERROR, "Parse error: a string holds a lone surrogate"))
            return
        if isinstance(message, list):
            await send_json(send, 400, jsonrpc_error(INVALID_REQUEST, "JSON-RPC batches are not supported"))
            return
        kind_target = _target(message) if isinstance(message, dict) else None
        if isinstance(message, dict):
            method, request_id = message.get("method"), message.get("id")
            scope.setdefault("state", {})["operation"] = Operation(
                method if isinstance(method, str) else None,
                request_id if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None,
                *(kind_target or (None, None)),
            )
        parsed = _PARSED.set((body, message) if isinstance(message, dict) else None)
        try:
            await self._decide(principal, kind_target, message, scope, _replay(body, receive), send, started)
        finally:
            _PARSED.reset(parsed)

    async def _decide(
        self,
        principal: Principal,
        kind_target: tuple[str, str] | None,
        message: Any,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
    ) -> None:
        requirement = self.guard.requirement(*kind_target) if kind_target else None
        decision = self.guard.decide(principal, requirement)
        if not decision.allowed:
            log.info(
                "authz denied",
                extra={
                    "principal": principal.key,
                    "target": kind_target and kind_target[1],
                    "reason": "insufficient_scope",
                },
            )
            target = kind_target and kind_target[1]
            self.observer.authz_denied(scope, principal, message, target, decision.reason, started)
            await self.challenges.insufficient_scope(send, decision.scopes, decision.reason)
            return
        await self.app(scope, receive, send)


def _target(message: dict[str, Any]) -> tuple[str, str] | None:
    """The catalog entry a JSON-RPC request acts on, if any: (kind, name or URI)."""
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    method = message.get("method")
    if method == "completion/complete":  # completing an argument needs what using its prompt or template needs
        ref = params.get("ref")
        if isinstance(ref, dict):
            kind, key = ("prompt", "name") if ref.get("type") == "ref/prompt" else ("resource", "uri")
            target = ref.get(key)
            return (kind, target) if isinstance(target, str) else None
        return None
    if method in _GUARDED:
        kind, key = _GUARDED[method]
        target = params.get(key)
        return (kind, target) if isinstance(target, str) else None
    return None


async def _read_body(receive: Receive) -> bytes:
    """The whole request body; its size is capped by LimitBody, which wraps `receive`."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _has_lone_surrogate(message: Any) -> bool:
    try:
        json.dumps(message, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


class _ParsedOnce:
    """`json` as the SDK's 2026-07-28 transport sees it: `loads` of the bytes this request's authorization parsed
    returns that message, so the body is parsed once and the SDK dispatches exactly what was authorized.

    The same parser either way (the SDK parses with `json.loads` too), so nothing a client sends can read one way
    here and another way there. The SDK offers no seam for a parsed body; everything else is plain `json`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)

    @staticmethod
    def loads(data: str | bytes, **options: Any) -> Any:
        parsed = _PARSED.get()
        if parsed is not None and parsed[0] == data and not options:  # equal, not identical: the SDK copies it
            return parsed[1]
        return json.loads(data, **options)


_PARSED_ONCE = _ParsedOnce()


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None  # the SDK answers malformed (or absurdly nested) JSON with its own parse error
