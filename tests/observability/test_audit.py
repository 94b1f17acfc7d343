"""The audit log: the expected records from a real server, the hash chain, and `make audit-verify`."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.observability.audit import GENESIS, AuditLog, verify
from app.observability.audit_fields import canonical_json, digest, record_json
from app.settings import Settings
from tests.support.calls import mcp_client
from tests.support.servers import ServerThread
from tests.support.values import REPO, TENANT

OID = "aaaaaaaa-0000-4000-8000-000000000001"
APP = "cccccccc-0000-4000-8000-000000000001"


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_server_writes_one_record_per_authn_failure_denial_and_tool_call(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = serve(audit={"sink": f"file:{audit}"})
    async with mcp_client(server.url, token("mcp.read")) as client:
        await client.call_tool("probe_read", {"note": "private words"})
        await client.call_tool("probe_audited", {"ticket": "T-1"})
        assert (await client.call_tool("probe_crash", {})).is_error
    async with httpx2.AsyncClient() as http:
        url = f"{server.url}/mcp"
        denied_token = token("mcp.read")
        headers = {"Authorization": f"Bearer {denied_token}", "Accept": "application/json, text/event-stream"}
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "probe_write", "arguments": {}}}
        assert (await http.post(url, json=body, headers=headers)).status_code == 403
        assert (await http.post(url, json={}, headers={"Authorization": "Bearer nope"})).status_code == 401

    records = _records(audit)
    assert [(r["event"], r.get("target"), r["outcome"]) for r in records] == [
        ("tool_call", "probe_read", "success"),
        ("tool_call", "probe_audited", "success"),
        ("tool_call", "probe_crash", "error"),
        ("authz_denied", "probe_write", "denied"),
        ("authn_failure", None, "failure"),
    ]
    read, audited, failed, denied, authn = records
    who = {"oid": OID, "tid": TENANT, "azp": APP, "kind": "user"}
    for record in (read, audited, failed, denied):
        assert record["principal"] == who and record["client_ip"] == "127.0.0.1"
        assert record["request_id"] and len(record["correlation_id"]) == 32
    assert read["args_sha256"] == digest({"note": "private words"}) and "arguments" not in read
    assert "private words" not in audit.read_text()  # only the digest, unless the tool opts in
    assert audited["arguments"] == {"ticket": "T-1"}  # @tool(audit_arguments=True)
    assert failed["reason"] == "tool_error"
    assert read["latency_ms"] >= 0 and isinstance(read["ts"], str) and read["ts"].endswith("Z")
    assert denied["request_id"] == "7" and denied["method"] == "tools/call" and "files.write" in denied["reason"]
    assert denied["args_sha256"] == digest({}) and denied["latency_ms"] >= 0 and authn["latency_ms"] >= 0
    assert authn["principal"] is None and authn["reason"] == "malformed" and authn["client_ip"] == "127.0.0.1"
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(records))
    assert verify(audit).ok


async def test_concurrent_calls_keep_one_unbroken_chain(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    # 20 calls at once from one caller: above the default in-flight cap, which is not under test here.
    server = serve(audit={"sink": f"file:{audit}"}, security={"max_concurrent_calls_per_principal": 20})
    async with mcp_client(server.url, token("mcp.read")) as client:
        await asyncio.gather(*(client.call_tool("probe_read", {"note": str(i)}) for i in range(20)))
    records = _records(audit)
    assert len(records) == 20 and {r["args_sha256"] for r in records} == {digest({"note": str(i)}) for i in range(20)}
    assert verify(audit).ok


def test_threads_writing_at_once_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = AuditLog.open(f"file:{path}")

    def write(n: int) -> None:
        for i in range(50):
            log.record("tool_call", target=f"t{n}", n=i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    verdict = verify(path)
    assert verdict.ok and verdict.records == 200


def test_a_restarted_process_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    AuditLog.open(f"file:{path}").record("tool_call", target="first")
    AuditLog.open(f"file:{path}").record("tool_call", target="second")
    first, second = _records(path)
    assert second["prev"] == first["hash"] and second["seq"] == 2
    assert verify(path).ok
    path.write_bytes(path.read_bytes()[:-5])  # a torn last line (crash mid-write) is set aside, never extended
    AuditLog.open(f"file:{path}").record("tool_call", target="third")
    first, resumed, third = _records(path)
    assert resumed["event"] == "audit_resumed" and resumed["prev"] == first["hash"] and third["target"] == "third"
    assert verify(path).ok and len(list(tmp_path.glob("a.jsonl.torn-*"))) == 1


def test_pid_placeholder_gives_each_process_its_own_file(tmp_path: Path) -> None:
    import os

    AuditLog.open(f"file:{tmp_path}/audit-{{pid}}.jsonl").record("tool_call")
    assert (tmp_path / f"audit-{os.getpid()}.jsonl").exists()


def _chain(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "chain.jsonl"
    path.unlink(missing_ok=True)
    log = AuditLog.open(f"file:{path}")
    for i in range(n):
        log.record("tool_call", target=f"tool{i}", outcome="success", args_sha256=digest({"i": i}))
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_edited_byte_is_caught_at_its_line(tmp_path: Path, data: st.DataObject) -> None:
    path = _chain(tmp_path)
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]))
    line = raw[:position].count(b"\n") + 1
    raw[position] = replacement
    path.write_bytes(bytes(raw))
    verdict = verify(path)
    assert not verdict.ok
    # An edited newline merges or splits lines; otherwise the broken link is the edited line itself.
    assert verdict.line is not None and verdict.line <= line


def test_a_removed_or_reordered_record_breaks_the_next_link(tmp_path: Path) -> None:
    path = _chain(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], lines[2], lines[3]]))
    assert verify(path).line == 2
    path.write_bytes(b"".join([lines[1], lines[0], lines[2], lines[3]]))
    assert verify(path).line == 1  # the head must start from the genesis hash


def _forged(record: dict[str, Any], **changes: Any) -> bytes:
    """A line for `record` with `changes`, its hash recomputed over the new content: self-consistent, as a forger
    who knows the format (but cannot change the records around it) would write it."""
    body = {k: v for k, v in record.items() if k != "hash"} | changes
    raw = record_json(body)
    return raw[:-1] + b',"hash":"' + hashlib.sha256(raw).hexdigest().encode() + b'"}\n'


def test_a_substituted_record_with_the_right_seq_and_its_own_hash_breaks_the_chain(tmp_path: Path) -> None:
    """Only `prev` ties a record to the one before it: seq and the record's own hash are both forgeable."""
    path = _chain(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    real = _records(path)
    # A record written from scratch (seq 2, a different tool) whose prev is not the real record 1's hash.
    forged = _forged(real[1], target="innocent", prev=hashlib.sha256(b"made up").hexdigest())
    path.write_bytes(b"".join([lines[0], forged, lines[2], lines[3]]))
    verdict = verify(path)
    assert not verdict.ok and verdict.line == 2 and "prev" in verdict.message
    # Linked to the real record 1: the real record 3 still names the hash of the real record 2.
    forged = _forged(real[1], target="innocent")
    assert forged != lines[1] and json.loads(forged)["prev"] == real[0]["hash"]
    path.write_bytes(b"".join([lines[0], forged, lines[2], lines[3]]))
    verdict = verify(path)
    assert not verdict.ok and verdict.line == 3 and "prev" in verdict.message
    path.write_bytes(b"".join(lines))
    assert verify(path).ok  # the same file, unforged


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(_JSON_VALUES)
def test_the_argument_digest_is_json_dumps_with_sorted_keys(value: Any) -> None:
    # The documented canonical form, byte for byte (the digest encodes with a prebuilt C encoder).
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    assert canonical_json(value) == expected.encode("utf-8", "surrogatepass")


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_verify_never_crashes_on_garbage(blob: bytes) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile() as handle:
        handle.write(blob)
        handle.flush()
        verdict = verify(Path(handle.name))
    assert verdict.ok == (blob == b"")


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_make_audit_verify(tmp_path: Path) -> None:
    path = _chain(tmp_path)
    good = subprocess.run(
        ["make", "-s", "audit-verify", f"FILE={path}"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert good.returncode == 0 and "ok: 4 record(s)" in good.stdout
    raw = bytearray(path.read_bytes())
    third = raw.index(b"tool2")
    raw[third + 4] = ord("9")  # one byte: tool2 -> tool9
    path.write_bytes(bytes(raw))
    bad = subprocess.run(
        ["make", "-s", "audit-verify", f"FILE={path}"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0 and "BROKEN at line 3" in bad.stdout
    missing = subprocess.run(
        ["make", "-s", "audit-verify", f"FILE={tmp_path}/nope"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode != 0 and "cannot read" in missing.stderr


def test_audit_sink_setting() -> None:
    base: dict[str, Any] = {"app_env": "development", "_env_file": None}
    assert Settings(**base, audit={"sink": "file:/tmp/a.jsonl"}).audit.sink == "file:/tmp/a.jsonl"
    with pytest.raises(ValidationError, match="AUDIT__SINK must be"):
        Settings(**base, audit={"sink": "syslog"})
    production = {
        "app_env": "production",
        "_env_file": None,
        "azuread": {"tenant_id": TENANT, "client_id": APP},
        "mcp": {"resource_host": "https://mcp.example.com"},
    }
    with pytest.raises(ValidationError, match="AUDIT__SINK=off is refused in production"):
        Settings(**production, audit={"sink": "off"})


async def test_hostile_bodies_get_4xx_and_leave_the_chain_intact(
    serve: Callable[..., ServerThread], token: Callable[..., str], tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    server = serve(audit={"sink": f"file:{audit}"})
    headers = {
        "Authorization": f"Bearer {token('mcp.read')}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    bodies = [
        b"[" * 200_000,  # nesting deeper than any parser's recursion limit
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["x"],"arguments":"\\u0000"}}',
        b'{"jsonrpc":"2.0","id":{"a":1},"method":"tools/call","params":{"name":"probe_write","arguments":[1e999]}}',
    ]
    async with httpx2.AsyncClient() as http:
        for body in bodies:
            response = await http.post(f"{server.url}/mcp", content=body, headers=headers)
            assert response.status_code < 500 and (response.status_code >= 400 or '"error"' in response.text)
    bad_name, bad_id = _records(audit)  # the nested body never parses; the others are refused before dispatch
    assert (bad_name["event"], bad_name["target"], bad_name["outcome"]) == ("authz_denied", None, "denied")
    assert bad_name["reason"] == "invalid_params"  # a tool name that is no string names no tool
    assert (bad_id["event"], bad_id["reason"]) == ("authz_denied", "invalid_request")  # an id that is an object
    assert verify(audit).ok
