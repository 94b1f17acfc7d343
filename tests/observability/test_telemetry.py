"""Telemetry units and in-process checks, on the SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import SpanKind

from app.auth.authz import Guard
from app.auth.principal import Principal
from app.catalog.discovery import discover
from app.compose.resource import server_options, telemetry_options
from app.compose.secrets import secret_store
from app.main import create_app
from app.observability.access_log import install_access_log_filter
from app.observability.audit import AuditLog
from app.observability.exporters import TelemetryConfigError, providers_from_env
from app.observability.logging import PAYLOAD_LOGGERS, JsonFormatter, configure_logging
from app.observability.observe import Observer
from app.observability.telemetry import Telemetry, enduser_hash, record_rate_limit, setup_telemetry
from app.server.build import build_mcp_server
from tests.support.calls import mcp_client, modern_call
from tests.support.entra import EntraStandIn
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread, free_port
from tests.support.values import TENANT, TEST_TOOLS, settings_for

OID = "aaaaaaaa-0000-4000-8000-000000000001"


def _spans(otel: OtelMemory, name: str) -> list[ReadableSpan]:
    return [span for span in otel.spans.get_finished_spans() if span.name == name]


# ---- setup from OTEL_* ---------------------------------------------------------------------------------------
def test_no_exporter_configured_installs_nothing(entra: EntraStandIn) -> None:
    settings = settings_for(entra, 8000)
    assert providers_from_env("mcp", {}) == (None, None)
    assert providers_from_env("mcp", {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}) == (
        None,
        None,
    )
    off = setup_telemetry(telemetry_options(settings), {"OTEL_SDK_DISABLED": "true"})
    assert (off.tracing, off.metrics) == (False, False)
    config = off.fastapi_config()  # FastAPI's native HTTP span and metrics stay off
    assert (config["tracing"], config["metrics"]) == (False, False)
    catalog = discover(TEST_TOOLS)
    guard, store = Guard(catalog, [], [], str), secret_store(settings)
    server = build_mcp_server(server_options(settings), catalog, guard, store, Observer(off, AuditLog(None), catalog))
    assert "OpenTelemetryMiddleware" not in {type(m).__name__ for m in server._lowlevel_server.middleware}


def test_exporters_sampler_and_service_name_come_from_otel_env(
    entra: EntraStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK classes read their own variables (sampler, resource) from the process environment.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    settings = settings_for(entra, 8000)
    tracer_provider, meter_provider = providers_from_env(
        settings.mcp.server_name,
        {
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "console",
        },
    )
    try:
        assert tracer_provider is not None and meter_provider is not None
        assert tracer_provider.resource.attributes["service.name"] == settings.mcp.server_name
        processor = tracer_provider._active_span_processor._span_processors[0]
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor._batch_processor._exporter, ConsoleSpanExporter)
        assert "0.25" in tracer_provider.sampler.get_description()
        reader = meter_provider._metric_readers[0]
        assert isinstance(reader, PeriodicExportingMetricReader)
        assert isinstance(reader._exporter, ConsoleMetricExporter)
    finally:
        for provider in (tracer_provider, meter_provider):
            if provider is not None:
                provider.shutdown()


def test_otlp_endpoint_alone_turns_on_otlp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SERVICE_NAME": "from-env"}
    tracer_provider, meter_provider = providers_from_env("mcp", env)
    try:
        assert tracer_provider is not None and meter_provider is not None
        assert tracer_provider.resource.attributes["service.name"] == "from-env"
        processor = tracer_provider._active_span_processor._span_processors[0]
        assert isinstance(processor, BatchSpanProcessor), processor
        exporter = processor._batch_processor._exporter
        assert type(exporter).__name__ == "OTLPSpanExporter"
    finally:
        for provider in (tracer_provider, meter_provider):
            if provider is not None:
                provider.shutdown()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "unsupported zipkin"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
        ({"OTEL_TRACES_EXPORTER": "azure_monitor"}, "azure"),
    ],
)
def test_unusable_otel_config_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(TelemetryConfigError, match=message):
        providers_from_env("mcp", env)


# ---- spans -----------------------------------------------------------------------------------------------------
async def test_mcp_span_parent_is_meta_context_else_the_http_span(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve()
    bearer = token("mcp.read")
    async with mcp_client(server.url, bearer) as client:  # the SDK client injects its span into params._meta
        await client.call_tool("probe_read", {"note": "x"})
    by_id = {span.context.span_id: span for span in otel.spans.get_finished_spans()}
    (call,) = _spans(otel, "tools/call probe_read")
    assert call.parent is not None and by_id[call.parent.span_id].name == "MCP send tools/call probe_read"
    (link,) = call.links  # semantic conventions: the transport (HTTP) span is linked, not the parent
    assert by_id[link.context.span_id].name == "POST /mcp" and by_id[link.context.span_id].kind == SpanKind.SERVER
    attrs = call.attributes or {}
    assert attrs["enduser.id"] == enduser_hash(OID)
    assert attrs["enduser.scope"] == "mcp.read" and attrs["tenant.id"] == TENANT
    assert attrs["auth.outcome"] == "success" and attrs["tool.is_error"] is False
    assert (by_id[link.context.span_id].attributes or {})["auth.outcome"] == "success"

    otel.spans.clear()
    headers, body = modern_call("probe_read", {"note": "y"})  # a raw request: no trace context in _meta
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{server.url}/mcp", json=body, headers=headers | {"Authorization": f"Bearer {bearer}"}
        )
    assert response.status_code == 200
    by_id = {span.context.span_id: span for span in otel.spans.get_finished_spans()}
    (call,) = _spans(otel, "tools/call probe_read")
    assert call.parent is not None and by_id[call.parent.span_id].name == "POST /mcp"  # HTTP span is the parent
    assert not call.links


async def test_raw_oid_setting(otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(telemetry={"enduser_id": "raw"})
    async with mcp_client(server.url, token("mcp.read")) as client:
        await client.call_tool("probe_read", {})
    (call,) = _spans(otel, "tools/call probe_read")
    assert (call.attributes or {})["enduser.id"] == OID


def test_record_rate_limit_marks_the_span_and_counts_rejections(otel: OtelMemory) -> None:
    before = otel.total("mcp.server.rate_limit.rejections", **{"rate_limit.policy": "per-principal"})
    with trace.get_tracer("test").start_as_current_span("request"):
        record_rate_limit("rejected", "per-principal")
    with trace.get_tracer("test").start_as_current_span("request2"):
        record_rate_limit("allowed")
    rejected, allowed = _spans(otel, "request")[0], _spans(otel, "request2")[0]
    assert (rejected.attributes or {})["rate_limit.outcome"] == "rejected"
    assert (allowed.attributes or {})["rate_limit.outcome"] == "allowed"
    after = otel.total("mcp.server.rate_limit.rejections", **{"rate_limit.policy": "per-principal"})
    assert after == before + 1


async def test_rate_limit_outcome_reaches_the_mcp_span(
    otel: OtelMemory, entra: EntraStandIn, token: Callable[..., str]
) -> None:
    """A limiter layer (stand-in for the rate limiter's) in front of the MCP endpoint reports its outcome."""
    settings = settings_for(entra, free_port())
    app = create_app(settings)
    route = next(r for r in app.api.router.routes if getattr(r, "path", None) == settings.mcp.path)
    endpoint = route.app  # type: ignore[attr-defined]

    async def limiter(scope: Any, receive: Any, send: Any) -> None:
        record_rate_limit("allowed", "per-principal")
        await endpoint(scope, receive, send)

    route.app = limiter  # type: ignore[attr-defined]
    with ServerThread(app, port=int(settings.resource_host.rsplit(":", 1)[1])) as server:
        headers, body = modern_call("probe_read", {})
        async with httpx2.AsyncClient() as http:
            bearer = {"Authorization": f"Bearer {token('mcp.read')}"}
            assert (await http.post(f"{server.url}/mcp", json=body, headers=headers | bearer)).status_code == 200
    (call,) = _spans(otel, "tools/call probe_read")
    assert call.parent is not None  # the tool call's span is a child of the HTTP request's
    parent_id = call.parent.span_id
    http_span = next(s for s in otel.spans.get_finished_spans() if s.context.span_id == parent_id)
    assert (call.attributes or {})["rate_limit.outcome"] == "allowed"
    assert (http_span.attributes or {})["rate_limit.outcome"] == "allowed"


# ---- metrics ---------------------------------------------------------------------------------------------------
async def test_duration_histogram_counts_tool_errors_and_bounds_labels(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    name = "mcp.server.operation.duration"
    ok = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "probe_read"}
    failed = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "probe_crash", "error.type": "tool_error"}
    other = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "_OTHER"}
    before = [otel.total(name, **labels) for labels in (ok, failed, other)]
    server = serve()
    async with mcp_client(server.url, token("mcp.read")) as client:
        await client.call_tool("probe_read", {})
        assert (await client.call_tool("probe_crash", {})).is_error
        await client.call_tool("no-such-tool-" + secrets.token_hex(4), {})
    after = [otel.total(name, **labels) for labels in (ok, failed, other)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    ok_points = [p for p in otel.points(name) if p.attributes.get("gen_ai.tool.name") == "probe_read"]
    assert all("error.type" not in p.attributes for p in ok_points)
    assert list(ok_points[0].explicit_bounds)[:3] == [0.01, 0.02, 0.05]  # semconv advisory buckets, seconds


async def test_auth_failures_counted_by_reason(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    name = "mcp.server.auth.failures"
    reasons = ("no_token", "malformed", "wrong_audience", "duplicate_authorization")
    before = {r: otel.total(name, **{"auth.failure_reason": r}) for r in reasons}
    server = serve()
    async with httpx2.AsyncClient() as http:
        url = f"{server.url}/mcp"
        await http.post(url, json={})
        await http.post(url, json={}, headers={"Authorization": "Bearer abc"})
        await http.post(url, json={}, headers={"Authorization": f"Bearer {token('mcp.read', audience='other')}"})
        await http.post(url, json={}, headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
    after = {r: otel.total(name, **{"auth.failure_reason": r}) for r in reasons}
    assert {r: after[r] - before[r] for r in reasons} == dict.fromkeys(reasons, 1)


async def test_active_sessions_in_stateful_mode(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(mcp={"stateless": False})
    idle = otel.total("mcp.server.active_sessions")
    async with mcp_client(server.url, token("mcp.read")) as one, mcp_client(server.url, token("mcp.read")) as two:
        await one.list_tools()
        await two.list_tools()
        assert otel.total("mcp.server.active_sessions") == idle + 2
    # The client's DELETE ends each session; the count comes back down.
    assert otel.total("mcp.server.active_sessions") == idle


# ---- nothing sensitive -----------------------------------------------------------------------------------------
async def test_no_token_or_argument_in_spans_or_logs(
    otel: OtelMemory,
    serve: Callable[..., ServerThread],
    token: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-" + secrets.token_hex(8)
    bearer = token("mcp.read")
    server = serve(log_level="DEBUG")  # even at DEBUG
    caplog.set_level(logging.DEBUG)
    async with mcp_client(server.url, bearer) as client:
        await client.call_tool("probe_read", {"note": secret})
        await client.call_tool("probe_read", {"note": {"nested": secret}})  # fails validation
        await client.call_tool("probe_crash", {"secret": secret})
    client_log = logging.getLogger("httpx2")
    client_log.disabled = True  # this test client's own request line is not the server's logging
    try:
        async with httpx2.AsyncClient() as http:
            await http.post(f"{server.url}/mcp?access_token={secret}", json={}, headers={"Authorization": "Bearer x"})
    finally:
        client_log.disabled = False
    spans = otel.spans.get_finished_spans()
    assert len(spans) >= 6
    dumped = "".join(span.to_json() for span in spans)
    assert secret not in dumped and bearer not in dumped
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert secret not in logged and bearer not in logged


# ---- logs ------------------------------------------------------------------------------------------------------
def test_json_log_lines_carry_trace_and_span_ids(otel: OtelMemory, entra: EntraStandIn) -> None:
    stream = io.StringIO()
    handler = configure_logging("WARNING")
    assert isinstance(handler, logging.StreamHandler)  # the app's root handler writes to stderr
    handler.setStream(stream)
    try:
        log = logging.getLogger("app.test")
        with trace.get_tracer("test").start_as_current_span("work") as span:
            log.warning("inside", extra={"reason": "why"})
            log.info("filtered out by LOG_LEVEL")
        log.error("outside")
        install_access_log_filter()
        logging.getLogger("uvicorn.access").warning(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "POST", "/mcp?access_token=abc", "1.1", 401
        )
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines][:2] == ["inside", "outside"]
    inside = lines[0]
    assert inside["level"] == "WARNING" and inside["logger"] == "app.test" and inside["reason"] == "why"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in lines[1]
    assert "access_token=abc" not in lines[2]["message"] and "POST /mcp?" in lines[2]["message"]


@pytest.mark.parametrize(("log_level", "payload_level"), [("DEBUG", "INFO"), ("INFO", "INFO"), ("WARNING", "WARNING")])
def test_payload_loggers_never_go_below_info_nor_below_log_level(
    entra: EntraStandIn, log_level: str, payload_level: str
) -> None:
    # Below INFO they would log raw arguments; below LOG_LEVEL every SDK line is built (and scrubbed) for nothing.
    before = {name: logging.getLogger(name).level for name in PAYLOAD_LOGGERS}
    handler = configure_logging(log_level)
    try:
        levels = {name: logging.getLevelName(logging.getLogger(name).getEffectiveLevel()) for name in PAYLOAD_LOGGERS}
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
    assert levels == dict.fromkeys(PAYLOAD_LOGGERS, payload_level)


def test_principal_annotation_modes() -> None:
    principal = Principal(
        tid=TENANT, sub="s", oid=OID, client_id="c", scopes=frozenset({"b", "a"}), roles=frozenset(),
        issuer="i", token_version="2.0", token_id="t",
    )  # fmt: skip
    seen: dict[str, Any] = {}

    class Recorder:
        def is_recording(self) -> bool:
            return True

        def set_attribute(self, key: str, value: Any) -> None:
            seen[key] = value

    for mode, expected in (("hashed", enduser_hash(OID)), ("raw", OID), ("off", None)):
        seen.clear()
        Telemetry(tracing=True, metrics=True, enduser_id=mode).annotate(Recorder(), principal)  # type: ignore[arg-type]
        assert seen.get("enduser.id") == expected
        assert seen["enduser.scope"] == "a b"
