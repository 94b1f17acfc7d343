"""The JSON-RPC operation of a request: the body read and parsed once, classified, and kept for every later layer.

Every method the SDK can dispatch is classified here, in both protocol eras (a test enumerates the SDK's own tables
and fails on a method missing from these): untargeted methods any authenticated caller may use, targeted methods
with the catalog entries they act on, and client notifications. Anything else is refused before dispatch
(`AuthorizeOperation`): a method the framework does not know how to authorize never reaches a handler.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.principal import principal_from_scope
from app.catalog.registry import COMPLETION_REFS
from app.core.sdk_private import replace_modern_json
from app.core.taskids import task_tool

INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700

Target = tuple[str, str]  # (catalog kind, name or URI)

# Methods without a target: any authenticated caller may use them (lists are filtered per caller).
UNTARGETED = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "logging/setLevel",
        "resources/unsubscribe",  # ends a subscription the caller was allowed to make
    }
)
# Notifications a client may send (no response, no target).
NOTIFICATIONS = frozenset(
    {
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)


def _named(kind: str, key: str) -> Callable[[dict[str, Any]], tuple[Target, ...] | None]:
    def read(params: dict[str, Any]) -> tuple[Target, ...] | None:
        target = params.get(key)
        return ((kind, target),) if isinstance(target, str) else None

    return read


def _completion_ref(params: dict[str, Any]) -> tuple[Target, ...] | None:
    """Completing an argument needs what using its prompt or template needs; read through `COMPLETION_REFS`, the
    same table dispatch uses, so the completer that runs is the one authorized."""
    ref = params.get("ref")
    ref_type = ref.get("type") if isinstance(ref, dict) else None
    kind_key = COMPLETION_REFS.get(ref_type) if isinstance(ref_type, str) else None
    target = ref.get(kind_key[1]) if kind_key is not None and isinstance(ref, dict) else None
    return ((kind_key[0], target),) if kind_key is not None and isinstance(target, str) else None


def _listened_resources(params: dict[str, Any]) -> tuple[Target, ...] | None:
    """Each resource a 2026-07-28 listen stream subscribes to needs what reading it needs."""
    wanted = params.get("notifications")
    if not isinstance(wanted, dict):
        return None
    uris = wanted.get("resourceSubscriptions")
    if uris is None:
        return ()
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        return None
    return tuple(("resource", uri) for uri in dict.fromkeys(uris))


def _task(params: dict[str, Any]) -> tuple[Target, ...] | None:
    """A task needs what calling its tool needs (the id names the tool: app/core/taskids.py), on every request."""
    tool = task_tool(params.get("taskId"))
    return (("tool", tool),) if tool is not None else None


# Methods with targets: each reads its targets from `params` (None: they are missing or of the wrong type).
TARGETED: dict[str, Callable[[dict[str, Any]], tuple[Target, ...] | None]] = {
    "tools/call": _named("tool", "name"),
    "prompts/get": _named("prompt", "name"),
    "resources/read": _named("resource", "uri"),
    "resources/subscribe": _named("resource", "uri"),  # watching a resource needs what reading it needs
    "completion/complete": _completion_ref,
    "subscriptions/listen": _listened_resources,
    # The Tasks extension (io.modelcontextprotocol/tasks, app/tasks/)
    "tasks/get": _task,
    "tasks/update": _task,
    "tasks/cancel": _task,
}
CLASSIFIED = UNTARGETED | NOTIFICATIONS | TARGETED.keys()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is refused before dispatch, whoever asks: an HTTP status and a JSON-RPC error."""

    status: int
    code: int
    message: str
    reason: str  # for logs, metrics and audit: a fixed word, never caller text


@dataclass(frozen=True, slots=True)
class Operation:
    """The parsed JSON-RPC message of this request, kept in `scope["state"]` so later layers never re-parse."""

    method: str | None
    request_id: Any = None
    targets: tuple[Target, ...] = ()
    refusal: Refusal | None = None

    @property
    def kind(self) -> str | None:
        return self.targets[0][0] if self.targets else None

    @property
    def target(self) -> str | None:
        return self.targets[0][1] if self.targets else None

    @property
    def tool(self) -> str | None:
        """The tool a `tools/call` calls (a `tasks/*` request targets its task's tool too, but calls nothing)."""
        return self.target if self.method == "tools/call" and self.kind == "tool" else None


def operation_from_scope(scope: Scope) -> Operation | None:
    state = scope.get("state")
    operation = state.get("operation") if isinstance(state, dict) else None
    return operation if isinstance(operation, Operation) else None


def classify(message: Any) -> Operation:
    """What a parsed body asks for; a refusal for anything that cannot be authorized as sent."""
    if isinstance(message, list):
        return Operation(None, refusal=Refusal(400, INVALID_REQUEST, "JSON-RPC batches are not supported", "batch"))
    if not isinstance(message, dict):  # not JSON at all: the SDK answers with its own parse error
        return Operation(None)
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        return Operation(None, refusal=Refusal(400, INVALID_REQUEST, "Invalid Request: id", "invalid_request"))
    method = message.get("method")
    if method is None and ("result" in message or "error" in message):
        return Operation(None, request_id)  # the client's answer to a server request (sampling, elicitation, ...)
    if not isinstance(method, str):
        return Operation(None, request_id, refusal=Refusal(400, INVALID_REQUEST, "Invalid Request", "invalid_request"))
    if method not in CLASSIFIED:
        refusal = Refusal(400, METHOD_NOT_FOUND, "Method not found", "unknown_method")
        return Operation(None, request_id, refusal=refusal)
    params = message.get("params", {})
    if params is not None and not isinstance(params, dict):
        return Operation(method, request_id, refusal=Refusal(400, INVALID_PARAMS, "Invalid params", "invalid_params"))
    read = TARGETED.get(method)
    if read is None:
        return Operation(method, request_id)
    targets = read(params or {})
    if targets is None:
        return Operation(method, request_id, refusal=Refusal(400, INVALID_PARAMS, "Invalid params", "invalid_params"))
    return Operation(method, request_id, targets)


# The body this request parsed, and what it parsed to (see `_ParsedOnce`).
_PARSED: ContextVar[tuple[bytes, Any] | None] = ContextVar("authorized_body", default=None)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")  # where a surrogate escape could be
_LONE_SURROGATE = Refusal(400, PARSE_ERROR, "Parse error: a string holds a lone surrogate", "parse_error")


class ParseOperation:
    """Reads the body once (LimitBody has capped it), parses and classifies it, and keeps the result in the scope.

    It refuses nothing itself: refusals go out from `AuthorizeOperation`, after the rate limit has counted the
    request, so every authenticated request spends from its principal's budget, refused or not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The SDK's 2026-07-28 transport parses bodies with `json`: hand it ours (see _ParsedOnce).
        replace_modern_json(_PARSED_ONCE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or principal_from_scope(scope) is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        message = _parse(body)
        if _SURROGATE_ESCAPE.search(body) is not None and _has_lone_surrogate(message):
            # json accepts "\ud800" alone; UTF-8 (logs, audit, downstream calls) cannot carry it. The SDK's own
            # parser refuses it on some paths only: refuse it on all, before anything reads it.
            operation = Operation(None, refusal=_LONE_SURROGATE)
        else:
            operation = classify(message)
        scope.setdefault("state", {})["operation"] = operation
        parsed = _PARSED.set((body, message) if isinstance(message, dict) else None)
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            _PARSED.reset(parsed)


def parsed_message() -> Any:
    """The message `ParseOperation` parsed for the current request (None for a GET, or a body that is no object)."""
    parsed = _PARSED.get()
    return parsed[1] if parsed is not None else None


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
