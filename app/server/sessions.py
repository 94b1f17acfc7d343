"""Handshake-era sessions as the SDK's session manager should see them; one ASGI layer in front of it.

Per session it keeps: an unguessable event scope bound to the caller (what resumable streams are keyed by, see
app/server/events.py), the protocol version the session negotiated, and the request ids in flight (the SDK keys a
session's response streams by request id: a second request reusing a live id would get a 500 and hang).
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.operation import parsed_message
from app.auth.principal import principal_from_scope
from app.core.sdk_private import session_is_open

_SESSION_HEADER = b"mcp-session-id"
# Past this many principals on record, those with no session open are forgotten at once. Twice the most sessions a
# process may hold (SECURITY__MAX_SESSIONS <= 10 000): a sweep leaves at most half, so sweeps cost O(1) amortized.
SWEEP_PRINCIPALS = 20_000


class SessionState:
    """One session's state. The session's own tasks hold it (they inherit the opening request's context); once the
    session is gone nothing does, and its entry in `_by_session` goes with it."""

    __slots__ = ("__weakref__", "in_flight", "key", "owner", "version")

    def __init__(self, owner: str | None) -> None:
        self.key, self.owner = secrets.token_urlsafe(16), owner
        self.version: bytes | None = None  # the protocol version the session negotiated
        self.in_flight: set[str] = set()


_current: ContextVar[SessionState | None] = ContextVar("session_state", default=None)
_by_session: weakref.WeakValueDictionary[str, SessionState] = weakref.WeakValueDictionary()


def current_scope() -> SessionState | None:
    """The session the current request (or the session task) belongs to; None outside a session."""
    return _current.get()


class SessionScope:
    """ASGI layer in front of the SDK's session manager (sessions mode only): binds each handshake-era request to
    its session's state; refuses a `Last-Event-ID` of another session (with an event store), a request id that is
    already in flight in the session, and a new session beyond the principal's cap (429; the SDK's own
    `max_sessions` answers 503 for the process)."""

    def __init__(
        self, app: ASGIApp, sessions: bool, events: bool, manager: StreamableHTTPSessionManager, per_principal: int
    ) -> None:
        self.app, self.sessions, self.events = app, sessions, events
        self.manager, self.per_principal = manager, per_principal
        self.opened: dict[str, list[str]] = {}  # principal key -> the sessions it opened (pruned at each opening)
        self.opening: dict[str, int] = {}  # principal key -> its openings still being answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.sessions or scope["type"] != "http" or _modern(scope):  # 2026-07-28 is stateless in every mode
            await self.app(scope, receive, send)
            return
        principal = principal_from_scope(scope)
        owner = f"{principal.key}|{principal.client_id}" if principal is not None else None
        session_id = next((v.decode("latin-1") for k, v in scope["headers"] if k == _SESSION_HEADER), None)
        known = _by_session.get(session_id) if session_id else None
        current = known if known is not None and known.owner == owner else SessionState(owner)
        request_id = None
        if session_id is None:
            who = principal.key if principal is not None else ""
            if not self._room(who):
                await _TOO_MANY(scope, receive, send)
                return
            current.version = _negotiated(parsed_message())
            self.opening[who] = self.opening.get(who, 0) + 1
            answered = [False]  # the opening stops counting once its answer starts: by then the session is in `opened`

            def settle(session_id: str | None = None) -> None:
                if session_id is not None:  # looked up now: `_room` may have replaced the list meanwhile
                    self.opened.setdefault(who, []).append(session_id)
                if not answered[0]:
                    answered[0] = True
                    if (left := self.opening.pop(who) - 1) > 0:
                        self.opening[who] = left

            try:
                await self._serve(scope, receive, _remember_session(send, current, settle), current, None)
            finally:
                settle()
            return
        elif scope["method"] == "GET" and self.events and current is known and not _names_scope(scope, current):
            await _UNKNOWN_EVENT(scope, receive, send)  # the SDK would answer an empty stream
            return
        elif current is known:
            scope = _speaking(scope, current.version) if current.version is not None else scope
            request_id = _request_id(parsed_message())
            if request_id in current.in_flight:
                await _ID_IN_USE(scope, receive, send)
                return
        await self._serve(scope, receive, send, current, request_id)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, current: SessionState, request_id: str | None
    ) -> None:
        if request_id is not None:
            current.in_flight.add(request_id)
            send = _freeing(send, current, request_id)
        token = _current.set(current)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
            if request_id is not None:
                current.in_flight.discard(request_id)

    def _room(self, who: str) -> bool:
        """Whether `who` may open one more session: those it opened that the SDK still holds, plus its openings in
        flight, are under the cap. Principals whose sessions have all ended are forgotten here."""
        if len(self.opened) > SWEEP_PRINCIPALS:  # principals that never came back: forget those with nothing open
            for key in list(self.opened):
                self._live(key)
        return self._live(who) + self.opening.get(who, 0) < self.per_principal

    def _live(self, who: str) -> int:
        live = [s for s in self.opened.pop(who, []) if session_is_open(self.manager, s)]
        if live:
            self.opened[who] = live
        return len(live)


def _freeing(send: Send, current: SessionState, request_id: str) -> Send:
    """Frees the id just before its response's last bytes go out: a client that read the whole response may reuse
    the id at once, before this request's task resumes (the SDK has dropped its stream for the id by then)."""

    async def free_then_send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            current.in_flight.discard(request_id)
        await send(message)

    return free_then_send


def _request_id(message: Any) -> str | None:
    """A request's id as the SDK keys its streams by (1 and "1" alike); None for notifications and responses."""
    if isinstance(message, dict) and "method" in message and message.get("id") is not None:
        return str(message["id"])
    return None


def _negotiated(message: Any) -> bytes | None:
    """The version an `initialize` will settle on (the SDK's rule: the requested one if known, else the latest)."""
    params = message.get("params") if isinstance(message, dict) and message.get("method") == "initialize" else None
    requested = params.get("protocolVersion") if isinstance(params, dict) else None
    if not isinstance(requested, str):
        return None
    return (requested if requested in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION).encode()


def _speaking(scope: Scope, version: bytes) -> Scope:
    """A session's requests as of the version it negotiated. The SDK reads resumability (priming events, stream
    closing) from each request's header instead; a client sending an older handshake version there (the
    conformance suite does) would silently lose it. Any other header value is left for the SDK to judge."""
    headers = scope["headers"]
    sent = next((v for k, v in headers if k == b"mcp-protocol-version"), None)
    if sent is None or sent == version or sent.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS:
        return scope
    rest = [(k, v) for k, v in headers if k != b"mcp-protocol-version"]
    return {**scope, "headers": [*rest, (b"mcp-protocol-version", version)]}


def _modern(scope: Scope) -> bool:
    version = next((v for k, v in scope["headers"] if k == b"mcp-protocol-version"), b"")
    return version.decode("latin-1") in MODERN_PROTOCOL_VERSIONS  # served statelessly in every mode


def _names_scope(scope: Scope, current: SessionState) -> bool:
    last = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"last-event-id"), None)
    return last is None or last.startswith(f"{current.key}.")


_NO_SUCH_EVENT = "Last-Event-ID names no event of this session"
_IN_FLIGHT = "request id already in flight in this session"
_TOO_MANY_SESSIONS = (
    "too many open sessions for this caller (SECURITY__MAX_SESSIONS_PER_PRINCIPAL): end one (DELETE) or let one expire"
)
_UNKNOWN_EVENT = JSONResponse(
    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": _NO_SUCH_EVENT}},
    status_code=400,
)
_TOO_MANY = JSONResponse(
    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": _TOO_MANY_SESSIONS}},
    status_code=429,
)
_ID_IN_USE = JSONResponse(
    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": _IN_FLIGHT}},
    status_code=409,
)


def _remember_session(send: Send, current: SessionState, answered: Callable[[str | None], None]) -> Send:
    """Keeps the session a response opens (its id, for later requests and for the principal's count), before the
    client can read it: a client that reads the answer may open another at once."""

    async def remember(message: Message) -> None:
        if message["type"] == "http.response.start":
            opened = next(
                (v.decode("latin-1") for k, v in message.get("headers", ()) if k.lower() == _SESSION_HEADER), None
            )
            if opened is not None:  # the request that opened a session: later ones name it
                _by_session[opened] = current
            answered(opened)
        await send(message)

    return remember
