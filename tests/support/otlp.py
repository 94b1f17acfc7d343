"""A small OTLP/HTTP receiver: decodes trace and metric export requests (protobuf) and keeps them for asserts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


@dataclass
class OtlpReceiver:
    """Serve `app()` with `ServerThread`; point OTEL_EXPORTER_OTLP_ENDPOINT at its URL."""

    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    keep: bool = True  # False: decode and count only (a long benchmark run must not grow memory)
    received: int = 0

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            message = ExportTraceServiceRequest()
            if not self._decode(request, await request.body(), message):
                return Response(status_code=415)
            if self.keep:
                self.traces.append(message)
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF)

        async def metrics(request: Request) -> Response:
            message = ExportMetricsServiceRequest()
            if not self._decode(request, await request.body(), message):
                return Response(status_code=415)
            if self.keep:
                self.metrics.append(message)
            return Response(ExportMetricsServiceResponse().SerializeToString(), media_type=PROTOBUF)

        return Starlette(
            routes=[Route("/v1/traces", traces, methods=["POST"]), Route("/v1/metrics", metrics, methods=["POST"])]
        )

    def _decode(self, request: Request, body: bytes, message: Any) -> bool:
        if request.headers.get("content-type") != PROTOBUF:
            self.rejected.append(request.headers.get("content-type", ""))
            return False
        if request.headers.get("content-encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        message.ParseFromString(body)
        self.received += 1
        return True

    def spans(self) -> Iterator[Span]:
        for request in self.traces:
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    yield from scope_spans.spans

    def resource_attributes(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for request in self.traces:
            for resource_spans in request.resource_spans:
                found |= attributes(resource_spans.resource.attributes)
        return found

    def metric(self, name: str) -> list[Metric]:
        return [
            metric
            for request in self.metrics
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == name
        ]


if __name__ == "__main__":
    # `python -m tests.support.otlp PORT`: a standalone sink, e.g. for bench/ runs with telemetry on.
    import sys

    import uvicorn

    uvicorn.run(OtlpReceiver(keep=False).app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
