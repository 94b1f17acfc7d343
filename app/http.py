"""Small pure-ASGI response helpers shared by the request-path layers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import Send

JsonHeaders = Iterable[tuple[str, str]]


async def send_json(send: Send, status: int, body: Any, headers: JsonHeaders = ()) -> None:
    """Send a complete JSON response; errors on the request path all go out through here."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def jsonrpc_error(code: int, message: str, request_id: Any = None, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def header(scope_headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """All values of one (lower-case) header name."""
    return [value for key, value in scope_headers if key == name]
