"""The audit log: one hash-chained JSON line per authn failure, authz denial and tool call; `verify` checks a file.

A record is `{...fields, "prev": <hash of the previous record>, "hash": <sha256 of this line without "hash">}`.
The hash covers the exact bytes written, so any edited byte breaks the chain at that line.
`python -m app.observability.audit verify FILE` (or `make audit-verify FILE=...`) reports the first broken link.

A record is written whole or not at all: a failed or short write is cut back off the file and the chain does not
advance, so the next record links to the last one on disk. A file that ends with a torn line (a crash mid-write) is
repaired at startup: the torn bytes are moved to `<file>.torn-<UTC time>` and an `audit_resumed` record, naming their
size and sha256, continues the chain. Anything else that does not link is refused, as an edit would be.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.startup import StartupError
from app.observability.audit_fields import record_json, timestamp
from app.observability.telemetry import AUDIT_WRITE_FAILURES

log = logging.getLogger("app.audit")

GENESIS = "0" * 64
_LINE = re.compile(rb'^(\{.*),"hash":"([0-9a-f]{64})"\}$', re.DOTALL)
_RECORD_START = b'{"seq":'  # every line starts so (`seq` is the first field)


# The authorization-server facade's events (app/authserver/): each names the client and the user, never a code or token.
AUTHSERVER_REGISTRATION = "authserver_registration"  # DCR: registered, or refused with the reason
AUTHSERVER_CONSENT = "authserver_consent"  # granted, denied, or remembered
AUTHSERVER_CODE = "authserver_code"  # a code issued to the client, or refused (the upstream refused)
AUTHSERVER_TOKEN = "authserver_token"  # noqa: S105 - an event name: issued or refused, with the grant type


class AuditSinkError(StartupError, ValueError):
    """The configured audit file cannot be continued safely."""


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
        prev, seq, torn = _resume(path)
        audit = cls(FileSink(path), prev, seq)
        if torn is not None:  # the repair is itself on the record, chained from the last complete line
            audit.record("audit_resumed", outcome="repaired", reason="torn_tail", **torn)
        return audit

    def named(self, server: str) -> NamedAudit:
        """The same log (one chain, one sink), each record naming `server`: one app may serve several."""
        return NamedAudit(self, server)

    def record(self, event: str, **fields: Any) -> None:
        """Append one record; a sink failure is logged (without the record) and never fails the request."""
        if self._write is None:
            return
        with self._lock:
            body = {
                "seq": self._seq + 1,
                "ts": timestamp(),
                "event": event,
                **fields,
                "prev": self._prev,
            }
            raw = record_json(body)
            line_hash = hashlib.sha256(raw).hexdigest()
            try:
                self._write(raw[:-1] + b',"hash":"' + line_hash.encode() + b'"}\n')
            except (OSError, ValueError) as exc:  # nothing of the line remains: the chain stays where it was
                log.error("audit sink write failed", extra={"error": type(exc).__name__, "event": event})
                AUDIT_WRITE_FAILURES.add(1, {"error.type": type(exc).__name__})
                return
            self._seq += 1
            self._prev = line_hash


class NamedAudit:
    """`AuditLog.named`: records carry `server` right after `event`."""

    def __init__(self, log: AuditLog, server: str) -> None:
        self.log, self.server = log, server

    @property
    def enabled(self) -> bool:
        return self.log.enabled

    def record(self, event: str, **fields: Any) -> None:
        self.log.record(event, server=self.server, **fields)


class FileSink:
    """An `O_APPEND` file that takes a line whole or not at all.

    One `os.write` per line, so each line lands whole at the end; a short write is finished with further writes,
    and when a write fails the bytes of the line that did land are cut off again (`ftruncate` to the length before
    it) before the error is raised. If even that fails, the next write first retries the cut, and fails the same
    way until it succeeds: nothing is ever appended after a partial line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size  # the length up to the last complete line we know of
        self._torn = False

    def __call__(self, line: bytes) -> None:
        if self._torn:
            os.ftruncate(self._fd, self._size)
            self._torn = False
        written = 0
        try:
            while written < len(line):
                count = os.write(self._fd, memoryview(line)[written:] if written else line)
                if count <= 0:
                    raise OSError(errno.EIO, "the audit file took no bytes")
                written += count
        except OSError:
            if written:
                self._torn = True
                try:
                    os.ftruncate(self._fd, self._size)
                    self._torn = False
                except OSError:
                    log.error("audit sink: a partial line could not be cut off yet", extra={"file": str(self.path)})
            raise
        self._size += written


def _resume(path: Path) -> tuple[str, int, dict[str, Any] | None]:
    """Continue the chain of an existing file from its last complete line: its hash, its seq, and what was repaired.

    A torn last line (no newline, or not a record whose hash matches its content) is moved aside and reported
    (`_set_aside`); the line before it must then be a record. Anything more is refused: `make audit-verify` says where.
    """
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            base, data = _last_lines(handle, size)
    except FileNotFoundError:
        return GENESIS, 0, None
    if not data:
        return GENESIS, 0, None
    start = data.index(b"\n") + 1 if base else 0  # the window begins at a line boundary
    lines = data[start:].split(b"\n")
    torn = lines.pop()  # the bytes after the last newline: empty unless the file ends mid-line
    if not torn and lines and _parse(lines[-1]) is None:
        torn = lines.pop() + b"\n"
    last = _parse(lines[-1]) if lines else (GENESIS, 0)
    # What a torn write leaves is the start of a record line; other content means this is not (only) a torn tail.
    if last is None or torn[: len(_RECORD_START)] != _RECORD_START[: len(torn)]:
        raise AuditSinkError(
            f"audit file {path} does not end with an audit record; run `make audit-verify FILE={path}`"
        )
    return last[0], last[1], (_set_aside(path, size - len(torn), torn) if torn else None)


def _last_lines(handle: Any, size: int) -> tuple[int, bytes]:
    """The file from `base` to its end, where the window holds the last two lines whole (or is the whole file)."""
    window = 65536
    while True:
        base = max(0, size - window)
        handle.seek(base)
        data: bytes = handle.read(size - base)
        if base == 0 or data.count(b"\n") >= 3:
            return base, data
        window *= 4


def _parse(line: bytes) -> tuple[str, int] | None:
    """(hash, seq) of a line that is a record whose hash matches its content; None otherwise."""
    match = _LINE.match(line)
    if match is None or hashlib.sha256(match.group(1) + b"}").hexdigest() != match.group(2).decode():
        return None
    try:
        seq = json.loads(match.group(1) + b"}").get("seq", 0)
    except (ValueError, AttributeError):
        return None
    return match.group(2).decode(), int(seq) if isinstance(seq, int) else 0


def _set_aside(path: Path, keep: int, torn: bytes) -> dict[str, Any]:
    """Copy the torn tail to `<file>.torn-<UTC time>`, cut it off the file, log a warning; the marker's fields."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in itertools.count():
        aside = path.with_name(f"{path.name}.torn-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise AuditSinkError(
                f"audit file {path} ends with a torn record that cannot be set aside ({exc.strerror}); "
                f"run `make audit-verify FILE={path}`"
            ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(torn)
            handle.flush()
            os.fsync(handle.fileno())
        os.truncate(path, keep)
    except OSError as exc:
        raise AuditSinkError(
            f"audit file {path} ends with a torn record that cannot be set aside ({exc.strerror}); "
            f"run `make audit-verify FILE={path}`"
        ) from None
    log.warning(
        "audit file %s ended with a torn record: %d byte(s) moved to %s; the chain resumes with an audit_resumed "
        "record",
        path,
        len(torn),
        aside,
    )
    return {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest(), "torn_file": str(aside)}


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
