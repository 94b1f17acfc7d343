"""The two request shapes being measured, and a tiny stdlib HTTP client to check them.

Shapes were taken from what the SDK's own client sends (`mcp.Client(url, mode=...)`):

* 2025-11-25: `initialize` once (capturing `Mcp-Session-Id` if the server returns one),
  `notifications/initialized`, then `tools/call` POSTs carrying `MCP-Protocol-Version`.
* 2026-07-28: every POST is standalone; routing headers `Mcp-Method` / `Mcp-Name`
  must equal the body, and `params._meta` carries protocol version, client info and
  client capabilities (the SDK rejects the request without the latter).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
PROTOCOLS = (LEGACY, MODERN)

_CLIENT_INFO = {"name": "bench", "version": "0.1.0"}
_BASE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: str


@dataclass
class Exchange:
    """A 2025-11-25 session's fixed headers, or none for 2026-07-28."""

    protocol: str
    token: str | None
    session_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        h = dict(_BASE_HEADERS)
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        return h | self.extra


def initialize_request(token: str | None) -> Request:
    body = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": _CLIENT_INFO},
    }
    return Request(Exchange(LEGACY, token).headers(), _dumps(body))


def initialized_notification(ex: Exchange) -> Request:
    return Request(ex.headers(), _dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))


def modern_request(
    ex: Exchange, method: str, params: dict[str, Any], name: str | None, capabilities: dict[str, Any] | None = None
) -> Request:
    """A standalone 2026-07-28 request: the `_meta` envelope (with these per-request client capabilities) and the
    routing headers (`Mcp-Name`: the tool of a tools/call, the task id of a tasks/* request)."""
    params = params | {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": _CLIENT_INFO,
            "io.modelcontextprotocol/clientCapabilities": capabilities or {},
        }
    }
    headers = ex.headers() | {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    return Request(headers, _dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))


def tools_call_request(
    ex: Exchange, text: str = "hi", tool: str = "echo", capabilities: dict[str, Any] | None = None
) -> Request:
    """The request the load driver repeats (`capabilities`: the per-request client capabilities, 2026-07-28 only)."""
    params: dict[str, Any] = {"name": tool, "arguments": {"text": text}}
    if ex.protocol == MODERN:
        return modern_request(ex, "tools/call", params, tool, capabilities)
    headers = ex.headers() | {"MCP-Protocol-Version": LEGACY}
    return Request(headers, _dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))


class ProtocolError(RuntimeError):
    pass


class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1."""

    def __init__(self, port: int, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self._c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def post(self, req: Request) -> tuple[int, dict[str, str], bytes]:
        self._c.request("POST", self.path, body=req.body.encode(), headers=req.headers)
        r = self._c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()

    def close(self) -> None:
        self._c.close()


def open_exchange(conn: Conn, protocol: str, token: str | None) -> Exchange:
    """For 2025-11-25, run the handshake (capturing any session id); 2026-07-28 has none."""
    ex = Exchange(protocol, token)
    if protocol == MODERN:
        return ex
    status, headers, body = conn.post(initialize_request(token))
    if status != 200:
        raise ProtocolError(f"initialize -> HTTP {status}: {body[:300]!r}")
    json_result(headers, body)
    ex.session_id = headers.get("mcp-session-id")
    status, _, body = conn.post(initialized_notification(ex))
    if status not in (200, 202):
        raise ProtocolError(f"notifications/initialized -> HTTP {status}: {body[:300]!r}")
    return ex


def json_result(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The JSON-RPC result of a JSON response, or of the last `data:` frame of an SSE response."""
    ctype = headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        frames = [ln[5:].strip() for ln in body.decode().splitlines() if ln.startswith("data:")]
        if not frames:
            raise ProtocolError(f"SSE response without data: {body[:300]!r}")
        body = frames[-1].encode()
    elif not ctype.startswith("application/json"):
        raise ProtocolError(f"expected a JSON or SSE response, got {ctype!r}: {body[:300]!r}")
    msg = json.loads(body)
    if "result" not in msg:
        raise ProtocolError(f"JSON-RPC error: {body[:300]!r}")
    result: dict[str, Any] = msg["result"]
    return result


def check_tools_call(conn: Conn, ex: Exchange) -> None:
    """One tools/call; raises unless it is HTTP 200 with a non-error result echoing the text."""
    status, headers, body = conn.post(tools_call_request(ex, "bench-check"))
    if status != 200:
        raise ProtocolError(f"tools/call ({ex.protocol}) -> HTTP {status}: {body[:300]!r}")
    result = json_result(headers, body)
    texts = [c.get("text") for c in result.get("content", [])]
    if result.get("isError") or "bench-check" not in texts:
        raise ProtocolError(f"tools/call ({ex.protocol}) returned an unexpected result: {body[:300]!r}")
