"""End to end: `uvicorn app.main:app` configured only by OTEL_* exports over OTLP/HTTP to a real receiver."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from app.observability.audit import verify
from app.observability.telemetry import enduser_hash
from tests.support.calls import mcp_client
from tests.support.entra import EntraStandIn
from tests.support.otlp import OtlpReceiver, attributes
from tests.support.servers import ServerThread, free_port, wait_ready
from tests.support.values import CLIENT_ID, REPO, REQUEST_STATE_KEY, TENANT, TEST_TOOLS

OID = "aaaaaaaa-0000-4000-8000-0000000000f1"


@pytest.fixture
def receiver() -> Iterator[tuple[OtlpReceiver, str]]:
    sink = OtlpReceiver()
    with ServerThread(sink.app()) as server:
        yield sink, server.url


ENDUSER_KEY = "telemetry-it-enduser-key-" + "0" * 16  # the pseudonym's HMAC key, so the test can compute it


def _server_env(entra: EntraStandIn, port: int, otlp: str, audit: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env = {k: v for k, v in env.items() if not k.startswith(("OTEL_", "AUDIT__", "LOG_"))}
    return env | {
        "APP_ENV": "production",
        "AZUREAD__INSTANCE": entra.base,
        "AZUREAD__TENANT_ID": TENANT,
        "AZUREAD__CLIENT_ID": CLIENT_ID,
        "MCP__RESOURCE_HOST": f"http://127.0.0.1:{port}",
        "MCP__REQUEST_STATE_KEYS": json.dumps([REQUEST_STATE_KEY]),
        "TOOLS__DIR": str(TEST_TOOLS),
        "TOOLS__LOCK_MODE": "warn",  # the test tools have no tools.lock
        "AUDIT__SINK": f"file:{audit}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        "OTEL_SERVICE_NAME": "telemetry-it",
        "TELEMETRY__ENDUSER_ID_KEY": ENDUSER_KEY,
        # Export only when the server flushes at shutdown: the test needs no sleeps and sees every point once.
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
    }


def _span(spans: list[PbSpan], name: str) -> PbSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, [span.name for span in spans]
    return matching[0]


def _points(sink: OtlpReceiver, name: str) -> list[Any]:
    metrics = sink.metric(name)
    assert metrics, f"no {name} exported"
    points: list[Any] = []
    for metric in metrics:
        kind = metric.WhichOneof("data")  # gauge, sum, histogram...: the field that holds the points
        assert kind is not None, metric
        points.extend(getattr(metric, kind).data_points)
    return points


@pytest.mark.slow
async def test_otlp_export_trace_metrics_and_audit(
    entra: EntraStandIn, receiver: tuple[OtlpReceiver, str], tmp_path: Path
) -> None:
    sink, otlp_url = receiver
    port, audit_file = free_port(), tmp_path / "audit.jsonl"
    url = f"http://127.0.0.1:{port}"
    log_file = (tmp_path / "server.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,  # not the checkout: its .env is not read
        env={**_server_env(entra, port, otlp_url, audit_file), "PYTHONPATH": str(REPO)},
        stdout=log_file,
        stderr=subprocess.STDOUT,
        text=True,
    )
    token = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="mcp.read", oid=OID)
    secret_note, secret_arg = "note-" + secrets.token_hex(8), "arg-" + secrets.token_hex(8)
    trace_id, parent_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    caller = NonRecordingSpan(SpanContext(trace_id, parent_id, is_remote=True, trace_flags=TraceFlags(1)))
    try:
        await wait_ready(url, server)
        async with mcp_client(url, token) as client:
            with trace.use_span(caller):  # the SDK client injects this context into params._meta
                ok = await client.call_tool("probe_read", {"note": secret_note})
                failed = await client.call_tool("probe_crash", {"secret": secret_arg})
        assert not ok.is_error and failed.is_error
        async with httpx2.AsyncClient() as http:
            bad = await http.post(f"{url}/mcp", headers={"Authorization": "Bearer not-a-jwt"}, json={})
            none = await http.post(f"{url}/mcp", json={})
            query = await http.post(f"{url}/mcp?access_token={secret_arg}", json={})
        assert bad.status_code == none.status_code == query.status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)  # graceful stop: the lifespan flushes both providers
        server.wait(timeout=30)
    log_file.seek(0)
    logs = log_file.read()

    spans = list(sink.spans())
    assert sink.resource_attributes()["service.name"] == "telemetry-it"
    call = _span(spans, "tools/call probe_read")
    assert call.trace_id == trace_id.to_bytes(16, "big")  # the client's trace, from params._meta
    # Parent: the client's span from params._meta (ours, or the client SDK's own span under it if this test
    # process happens to record spans), never the transport span.
    assert call.parent_span_id and call.parent_span_id not in {s.span_id for s in spans if s.name == "POST /mcp"}
    assert call.kind == PbSpan.SPAN_KIND_SERVER
    attrs = attributes(call.attributes)
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.tool.name"] == "probe_read"
    assert "jsonrpc.request.id" in attrs
    assert attrs["enduser.id"] == enduser_hash(OID, ENDUSER_KEY.encode()) and OID not in attrs.values()
    assert attrs["enduser.scope"] == "mcp.read"
    assert attrs["tenant.id"] == TENANT
    assert attrs["auth.outcome"] == "success"
    assert attrs["tool.is_error"] is False
    # The HTTP server span that carried the request is linked (MCP and transport contexts are independent).
    http_spans = {span.span_id: span for span in spans if span.name == "POST /mcp"}
    assert [link.span_id for link in call.links if link.span_id in http_spans]
    linked = http_spans[call.links[0].span_id]
    assert attributes(linked.attributes)["auth.outcome"] == "success"

    fail = attributes(_span(spans, "tools/call probe_crash").attributes)
    assert fail["tool.is_error"] is True and fail["error.type"] == "tool_error"
    refused = [attributes(s.attributes) for s in http_spans.values()]
    assert {"auth.outcome": "failure", "auth.failure_reason": "malformed"}.items() <= next(
        a for a in refused if a.get("auth.failure_reason") == "malformed"
    ).items()

    durations = {
        (a.get("gen_ai.tool.name"), a.get("error.type")): point.count
        for point in _points(sink, "mcp.server.operation.duration")
        if (a := attributes(point.attributes)).get("mcp.method.name") == "tools/call"
    }
    assert durations[("probe_read", None)] == 1
    assert durations[("probe_crash", "tool_error")] == 1  # isError results count as errors
    failures = {
        attributes(p.attributes)["auth.failure_reason"]: p.as_int for p in _points(sink, "mcp.server.auth.failures")
    }
    assert failures == {"malformed": 1, "no_token": 2}

    # Nothing sensitive in what left the process: no token, no raw argument, in spans, metrics or logs.
    sent = [*(t.SerializeToString() for t in sink.traces), *(m.SerializeToString() for m in sink.metrics)]
    exported = b"".join(sent)
    for secret in (token, secret_note, secret_arg, "not-a-jwt"):
        assert secret.encode() not in exported
        assert secret not in logs
    lines = [line for line in logs.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)  # every line is one JSON event

    records = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [(r["event"], r.get("target"), r["outcome"]) for r in records] == [
        ("tool_call", "probe_read", "success"),
        ("tool_call", "probe_crash", "error"),
        ("authn_failure", None, "failure"),
        ("authn_failure", None, "failure"),
        ("authn_failure", None, "failure"),
    ]
    assert records[0]["correlation_id"] == format(trace_id, "032x")
    assert records[0]["principal"] == {"oid": OID, "tid": TENANT, "azp": entra_app_id(), "kind": "user"}
    assert verify(audit_file).ok


def entra_app_id() -> str:
    return "cccccccc-0000-4000-8000-000000000001"  # the stand-in's default client app (azp)
