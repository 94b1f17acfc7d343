"""OpenTelemetry SDK providers from the standard `OTEL_*` variables: which exporters (otlp, console, azure_monitor),
over which protocol, for traces and metrics. `setup_telemetry` (telemetry.py) installs what this builds."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.core.startup import StartupError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider


class TelemetryConfigError(StartupError, ValueError):
    """An `OTEL_*` setting names an exporter or protocol this server cannot provide."""


def providers_from_env(service_name: str, env: Mapping[str, str]) -> tuple[TracerProvider | None, MeterProvider | None]:
    """SDK providers for the exporters `OTEL_*` asks for, or None per signal when it asks for none.

    The SDK's own auto-configuration is private (`opentelemetry.sdk._configuration`) and defaults to OTLP when
    nothing is set; here an unset exporter means off. Endpoint, headers, timeout, sampler, batch and export
    intervals are read from the same variables by the SDK classes themselves."""
    traces, metric_names = _exporters("TRACES", env), _exporters("METRICS", env)
    if not traces and not metric_names:
        return None, None
    _check_protocol(env)
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    tracer_provider = meter_provider = None
    if traces:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tracer_provider = TracerProvider(resource=resource)
        for name in traces:
            tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(name, env)))
    if metric_names:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers = [PeriodicExportingMetricReader(_metric_exporter(name, env)) for name in metric_names]
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return tracer_provider, meter_provider


def _exporters(signal: str, env: Mapping[str, str]) -> list[str]:
    """`OTEL_{signal}_EXPORTER` (otlp, console, azure_monitor, none); unset means otlp if an endpoint is set."""
    names = env.get(f"OTEL_{signal}_EXPORTER")
    if names is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        names = "otlp" if endpoint else "none"
    chosen = [name.strip().lower() for name in names.split(",") if name.strip()]
    unknown = set(chosen) - {"otlp", "console", "azure_monitor", "none"}
    if unknown:
        raise TelemetryConfigError(
            f"OTEL_{signal}_EXPORTER: unsupported {', '.join(sorted(unknown))} (use otlp, console, azure_monitor, none)"
        )
    return [name for name in chosen if name != "none"]


def _check_protocol(env: Mapping[str, str]) -> None:
    for key in (f"OTEL_EXPORTER_OTLP{signal}_PROTOCOL" for signal in ("", "_TRACES", "_METRICS")):
        value = env.get(key)
        if value and value != "http/protobuf":
            raise TelemetryConfigError(f"{key}={value}: this server exports OTLP over http/protobuf only")


def _span_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout belongs to the audit log
    return _azure("AzureMonitorTraceExporter", env)


def _metric_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    return _azure("AzureMonitorMetricExporter", env)


def _azure(kind: str, env: Mapping[str, str]) -> Any:
    """Azure Monitor (Application Insights), from the optional `azure-monitor` extra."""
    try:
        from azure.monitor.opentelemetry import exporter as azure_exporter
    except ImportError:
        raise TelemetryConfigError(
            "azure_monitor exporter needs the optional extra: uv sync --extra azure-monitor"
        ) from None
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not connection:
        raise TelemetryConfigError("azure_monitor exporter needs APPLICATIONINSIGHTS_CONNECTION_STRING")
    return getattr(azure_exporter, kind)(connection_string=connection)
