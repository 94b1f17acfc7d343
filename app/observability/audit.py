"""The audit log: one hash-chained JSON line per authn failure, authz denial and tool call; `verify` checks a file.

A record is `{...fields, "prev": <hash of the previous record>, "hash": <sha256 of this line without "hash">}`.
The hash covers the exact bytes written, so any edited byte breaks the chain at that line.
`python -m app.observability.audit verify FILE` (or `make audit-verify FILE=...`) reports the first broken link.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

log = logging.getLogger("app.audit")

GENESIS = "0" * 64
_LINE = re.compile(rb'^(\{.*),"hash":"([0-9a-f]{64})"\}$', re.DOTALL)


class AuditSinkError(ValueError):
    """The configured audit file cannot be continued safely."""


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


class AuditLog:
    """Appends chained records to one sink; thread-safe, one write per line, in order."""

    def __init__(self, write: Callable[[bytes], object] | None, prev: str = GENESIS, seq: int = 0) -> None:
        self._write = write
        self._prev = prev
        self._seq = seq
        # The chain needs a total order of records; a plain lock around a page-cache append is microseconds.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._write is not None

    @classmethod
    def open(cls, sink: str) -> AuditLog:
        """`stdout`, `off`, or `file:/path` (`{pid}` in the path gives each worker process its own file)."""
        if sink == "off":
            return cls(None)
        if sink == "stdout":

            def to_stdout(line: bytes) -> None:
                sys.stdout.buffer.write(line)  # looked up per write: test runners and daemons swap sys.stdout
                sys.stdout.buffer.flush()

            return cls(to_stdout)
        path = Path(sink.removeprefix("file:").replace("{pid}", str(os.getpid())))
        prev, seq = _resume(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        # O_APPEND + one os.write per line: each line lands whole at the end, even with another writer.
        return cls(lambda line: os.write(fd, line), prev, seq)

    def record(self, event: str, **fields: Any) -> None:
        """Append one record; a sink failure is logged (without the record) and never fails the request."""
        if self._write is None:
            return
        with self._lock:
            body = {
                "seq": self._seq + 1,
                "ts": _timestamp(),
                "event": event,
                **fields,
                "prev": self._prev,
            }
            raw = record_json(body)
            line_hash = hashlib.sha256(raw).hexdigest()
            try:
                self._write(raw[:-1] + b',"hash":"' + line_hash.encode() + b'"}\n')
            except (OSError, ValueError) as exc:
                log.error("audit sink write failed", extra={"error": type(exc).__name__, "event": event})
                return
            self._seq += 1
            self._prev = line_hash


def _timestamp() -> str:
    """UTC, microseconds, `Z` (e.g. 2026-11-22T17:11:29.185123Z); the seconds part is formatted once per second."""
    global _second
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


_second: tuple[int, str] = (-1, "")


def principal_fields(principal: Any) -> dict[str, Any] | None:
    """Who, as the audit record names them: object id, tenant, and the calling app (azp / appid)."""
    if principal is None:
        return None
    return {
        "oid": principal.oid,
        "tid": principal.tid,
        "azp": principal.client_id,
        "kind": "app" if principal.is_app else "user",
    }


def client_ip(scope: Mapping[str, Any]) -> str | None:
    """The peer address as uvicorn resolved it (proxy headers from trusted proxies only)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _resume(path: Path) -> tuple[str, int]:
    """Continue the chain of an existing file from its last complete line."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read()
    except FileNotFoundError:
        return GENESIS, 0
    if not tail:
        return GENESIS, 0
    if not tail.endswith(b"\n"):
        raise AuditSinkError(f"audit file {path} ends with a partial record; run `make audit-verify FILE={path}`")
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    match = _LINE.match(last)
    if match is None:
        raise AuditSinkError(
            f"audit file {path} does not end with an audit record; run `make audit-verify FILE={path}`"
        )
    seq = json.loads(match.group(1) + b"}").get("seq", 0)
    return match.group(2).decode(), int(seq)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    message: str
    line: int | None = None


def verify(path: Path) -> Verdict:
    """Walk the chain from the genesis hash; stop at the first record that does not link."""
    prev, seq = GENESIS, 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                return Verdict(False, seq, f"line {number}: partial record (no newline)", number)
            match = _LINE.match(line[:-1])
            if match is None:
                return Verdict(False, seq, f"line {number}: not an audit record", number)
            body, stated = match.group(1) + b"}", match.group(2).decode()
            if hashlib.sha256(body).hexdigest() != stated:
                return Verdict(False, seq, f"line {number}: content does not match its hash (edited)", number)
            try:
                fields = json.loads(body)
            except ValueError:
                return Verdict(False, seq, f"line {number}: not valid JSON", number)
            if fields.get("prev") != prev:
                return Verdict(False, seq, f"line {number}: prev does not match the previous record's hash", number)
            if fields.get("seq") != seq + 1:
                return Verdict(False, seq, f"line {number}: seq {fields.get('seq')} where {seq + 1} was due", number)
            prev, seq = stated, seq + 1
    return Verdict(True, seq, f"ok: {seq} record(s), chain intact, last hash {prev}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.observability.audit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify a file's hash chain and report the first broken link")
    check.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        verdict = verify(args.file)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    print(verdict.message if verdict.ok else f"BROKEN at {verdict.message}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
