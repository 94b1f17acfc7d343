"""What an audit record says: its timestamp and JSON encoding, digests of arguments, bounded caller text, and who
called from where. Used by the audit log (audit.py), the per-operation observer and the authorization server."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

# Built once: json.dumps(**options) builds a new encoder on every call, and this runs on every tool call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
_ESCAPED = json.JSONEncoder(separators=(",", ":"), default=str)  # ASCII only: for text UTF-8 cannot carry
# JSONEncoder.encode still builds json's C encoder per call (a third of a digest's cost): build it once, with
# _CANONICAL's options. No cycle check: arguments are parsed JSON, and a cycle would end in RecursionError anyway.
_C_CANONICAL = (
    c_make_encoder(None, str, encode_basestring, None, ":", ",", True, False, True) if c_make_encoder else None
)


def canonical_json(value: Any) -> bytes:
    """Key-sorted, compact JSON: the same arguments always give the same bytes (and so the same digest).

    A lone surrogate (JSON allows the escape; UTF-8 cannot carry it) is kept as its code point's bytes."""
    text = "".join(_C_CANONICAL(value, 0)) if _C_CANONICAL is not None else _CANONICAL.encode(value)
    return text.encode("utf-8", "surrogatepass")


def record_json(record: dict[str, Any]) -> bytes:
    """Compact JSON in field order. pydantic-core's encoder is several times faster than json's for a record; text
    it refuses (a lone surrogate) is written ASCII-escaped instead, so the line is still valid UTF-8 JSON."""
    try:
        return to_json(record, fallback=str)
    except PydanticSerializationError:
        return _ESCAPED.encode(record).encode()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`: what the audit log stores instead of raw tool arguments."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


# Caller text (method names, request ids, URIs, addresses) is kept as is up to this many characters.
MAX_TEXT = 128


def text_digest(text: str) -> str:
    """`sha256:<hex>` of a string's UTF-8 bytes (a lone surrogate as its code point's bytes)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def bounded(value: Any) -> str | None:
    """Caller-supplied text as an audit field, so no caller can make a record large: up to `MAX_TEXT` characters
    as is; longer, its first 32 characters, `…`, and its `text_digest` (at most 104 characters). Non-strings (an
    integer request id) are written as their `str`."""
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = str(value)
        except ValueError:  # an integer with more digits than Python converts
            return "<unprintable>"
    return value if len(value) <= MAX_TEXT else f"{value[:32]}…{text_digest(value)}"


def principal_fields(principal: Any) -> dict[str, Any] | None:
    """Who, as the audit record names them: object id, tenant, the calling app (azp / appid), and the kind (user,
    app, agent). For an Entra Agent ID agent also its parent app (`xms_par_app_azp`, as Entra's sign-in logs show it)
    and, when it acts for a signed-in user, that user's object id (`on_behalf_of`; then `oid` is the user's too)."""
    if principal is None:
        return None
    fields = {"oid": principal.oid, "tid": principal.tid, "azp": principal.client_id, "kind": principal.kind}
    if fields["kind"] == "agent":
        fields["agent_parent"] = bounded(principal.agent_parent)
        fields["on_behalf_of"] = bounded(principal.on_behalf_of)
    return fields


def client_ip(scope: Mapping[str, Any]) -> str | None:
    """The peer address as uvicorn resolved it (proxy headers from trusted proxies only)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def timestamp() -> str:
    """UTC, microseconds, `Z` (e.g. 2026-11-22T17:11:29.185123Z); the seconds part is formatted once per second."""
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


_second: tuple[int, str] = (-1, "")
