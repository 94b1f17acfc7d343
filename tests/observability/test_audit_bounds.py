"""Audit records stay small whatever the caller sends, a record is written whole or not at all,
and a file that ends with a torn line is repaired at startup instead of stopping the server for good."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.observability.audit import AuditLog, AuditSinkError, verify
from app.observability.audit_fields import digest
from tests.support.calls import mcp_client
from tests.support.servers import ServerThread

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(path)]


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


# ---- bounded fields -----------------------------------------------------------------------------------------------
async def test_a_caller_without_scopes_cannot_write_large_records(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = serve(audit={"sink": f"file:{audit}"}, mcp={"stateless": True})  # single posts, no session
    headers = HEADERS | {"Authorization": f"Bearer {token(None)}"}
    made_up, long_id, long_method = "t" * 500_000, "i" * 200_000, "m/" * 250_000
    bodies: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": long_id, "method": "tools/call", "params": {"name": made_up, "arguments": {}}},
        {"jsonrpc": "2.0", "id": 2, "method": long_method, "params": {"name": "probe_read"}},
        # A real tool that audits its arguments: a denied caller's 600 KB arguments are not written out.
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "probe_audited", "arguments": {"ticket": "x" * 600_000}},
        },
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "probe_write", "arguments": {}}},
    ]
    async with httpx2.AsyncClient(timeout=30) as http:
        for body in bodies:
            response = await http.post(f"{server.url}/mcp", json=body, headers=headers)
            assert response.status_code < 500

    sizes = [len(line) for line in _lines(audit)]
    assert len(sizes) == len(bodies) and max(sizes) < 2048, sizes
    unknown, method, audited, known = _records(audit)
    assert (unknown["event"], unknown["outcome"]) == ("tool_call", "error")  # no such tool: dispatch says so
    assert all(r["event"] == "authz_denied" and r["outcome"] == "denied" for r in (method, audited, known))
    assert unknown["target"] is None and unknown["target_unknown"] == f"sha256:{_sha(made_up)}"
    assert unknown["method"] == "tools/call" and unknown["args_sha256"]
    assert unknown["request_id"] == f"{long_id[:32]}…sha256:{_sha(long_id)}"
    assert method["method"] == f"{long_method[:32]}…sha256:{_sha(long_method)}" and method["request_id"] == "2"
    assert audited["target"] == "probe_audited" and audited["arguments_omitted"] == "too_large"
    assert "arguments" not in audited and audited["args_sha256"] == digest({"ticket": "x" * 600_000})
    assert known["target"] == "probe_write" and "target_unknown" not in known  # real names are written as they are
    assert verify(audit).ok


async def test_small_opted_in_arguments_are_still_written(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = serve(audit={"sink": f"file:{audit}"})
    async with mcp_client(server.url, token("mcp.read")) as client:
        await client.call_tool("probe_audited", {"ticket": "T-1"})
        await client.call_tool("probe_audited", {"ticket": "y" * 10_000})
    small, large = _records(audit)
    assert small["arguments"] == {"ticket": "T-1"} and small["target"] == "probe_audited"
    assert "arguments" not in large and large["arguments_omitted"] == "too_large"
    assert large["args_sha256"] == digest({"ticket": "y" * 10_000})
    assert verify(audit).ok


# ---- whole lines or nothing ---------------------------------------------------------------------------------------
def _failing_writes(monkeypatch: pytest.MonkeyPatch, plan: list[str]) -> None:
    """os.write follows `plan` for the audit file's writes, one entry per call: `half` writes half the bytes and
    returns the count, `enospc` raises ENOSPC; other file descriptors and calls past the plan are untouched."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if not plan or fd <= 2:
            return real(fd, data)
        step = plan.pop(0)
        if step == "half":
            return real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("plan", [["half", "enospc"], ["enospc"], ["half", "half", "enospc"]])
def test_a_write_that_fails_leaves_no_partial_line_and_the_chain_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, plan: list[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(f"file:{path}")
    log.record("tool_call", target="first")
    _failing_writes(monkeypatch, plan)
    log.record("tool_call", target="lost", secret_marker="do-not-log-me")
    monkeypatch.undo()
    assert path.read_bytes().endswith(b"\n") and len(_lines(path)) == 1  # nothing of the failed line is left
    log.record("tool_call", target="next")
    first, after = _records(path)
    assert (first["target"], after["target"]) == ("first", "next")
    assert after["prev"] == first["hash"] and after["seq"] == 2
    assert verify(path).ok
    failures = [r for r in caplog.records if r.getMessage() == "audit sink write failed"]
    assert len(failures) == 1 and "do-not-log-me" not in caplog.text
    # A restarted process continues the same chain.
    AuditLog.open(f"file:{path}").record("tool_call", target="restarted")
    assert verify(path).ok and verify(path).records == 3


def test_a_partial_line_that_cannot_be_cut_off_yet_blocks_writes_until_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog.open(f"file:{path}")
    log.record("tool_call", target="first")
    _failing_writes(monkeypatch, ["half", "enospc"])
    real_truncate, cuts = os.ftruncate, ["fail", "fail"]

    def ftruncate(fd: int, length: int) -> None:
        if cuts:
            cuts.pop(0)
            raise OSError(errno.EIO, "Input/output error")
        real_truncate(fd, length)

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    log.record("tool_call", target="lost")  # half a line stays on disk for now
    assert not path.read_bytes().endswith(b"\n")
    log.record("tool_call", target="also lost")  # the cut fails again: nothing is appended after the partial line
    assert len(path.read_bytes().split(b"\n")) == 2
    log.record("tool_call", target="next")  # the cut succeeds, then the line is written
    first, after = _records(path)
    assert after["target"] == "next" and after["prev"] == first["hash"] and verify(path).ok


# ---- a torn last line at startup ----------------------------------------------------------------------------------
def _chain(path: Path, n: int = 3) -> None:
    log = AuditLog.open(f"file:{path}")
    for i in range(n):
        log.record("tool_call", target=f"tool{i}", outcome="success")


async def test_a_torn_last_line_is_set_aside_and_the_server_starts(
    serve: Callable[..., ServerThread],
    token: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    audit = tmp_path / "audit.jsonl"
    _chain(audit)
    whole = audit.read_bytes()
    audit.write_bytes(whole[:-40])  # the crash came 40 bytes before the end of record 3
    torn = whole[whole.rindex(b"\n", 0, len(whole) - 1) + 1 : -40]

    caplog.set_level(logging.WARNING, logger="app.audit")
    server = serve(audit={"sink": f"file:{audit}"})
    async with mcp_client(server.url, token("mcp.read")) as client:
        await client.call_tool("probe_read", {})

    (aside,) = tmp_path.glob("audit.jsonl.torn-*")
    assert aside.read_bytes() == torn and aside.stat().st_mode & 0o777 == 0o600
    _, two, marker, call = _records(audit)
    assert (marker["event"], marker["reason"], marker["seq"]) == ("audit_resumed", "torn_tail", 3)
    assert marker["prev"] == two["hash"] and call["prev"] == marker["hash"]
    assert marker["torn_bytes"] == len(torn) and marker["torn_sha256"] == _sha(torn)
    assert marker["torn_file"] == str(aside)
    assert call["event"] == "tool_call" and call["target"] == "probe_read"
    assert verify(audit).ok
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.audit" and r.levelno == logging.WARNING]
    assert any(str(audit) in w and "torn" in w and str(aside) in w for w in warnings), warnings


@pytest.mark.parametrize(
    "damage",
    [
        "only line torn",  # the crash came during the very first write
        "last line edited",  # complete, but its hash does not match its content
        "written after a partial line",  # what the previous writer left after a short write
    ],
)
def test_other_torn_tails_are_repaired_too(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "audit.jsonl"
    _chain(path, n=1 if damage == "only line torn" else 3)
    lines = _lines(path)
    if damage == "only line torn":
        path.write_bytes(lines[0][:10])
    elif damage == "last line edited":
        path.write_bytes(b"".join(lines[:2]) + lines[2].replace(b"tool2", b"tool9"))
    else:
        path.write_bytes(b"".join(lines[:2]) + lines[2][:30] + lines[2])
    AuditLog.open(f"file:{path}").record("tool_call", target="after")
    records = _records(path)
    assert records[-2]["event"] == "audit_resumed" and records[-1]["target"] == "after"
    assert verify(path).ok
    assert len(list(tmp_path.glob("audit.jsonl.torn-*"))) == 1


@pytest.mark.parametrize("damage", ["edited in the middle", "last two lines broken", "not an audit file"])
def test_damage_before_the_last_line_is_still_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "audit.jsonl"
    _chain(path)
    lines = _lines(path)
    if damage == "edited in the middle":  # an edited record followed by a torn one: only the tail is repairable
        path.write_bytes(lines[0] + lines[1].replace(b"tool1", b"tool7") + lines[2][:20])
    elif damage == "last two lines broken":
        path.write_bytes(lines[0] + lines[1][:-20] + b"\n" + lines[2][:-20])
    else:
        path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\nno newline at the end")
    before = path.read_bytes()
    with pytest.raises(AuditSinkError, match="run `make audit-verify"):
        AuditLog.open(f"file:{path}")
    assert path.read_bytes() == before and not list(tmp_path.glob("audit.jsonl.torn-*"))  # left as it was
