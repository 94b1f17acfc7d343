"""The OpenTelemetry SDK's in-memory exporters, as the top-level conftest.py's `otel` fixture installs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class OtelMemory:
    """The SDK's in-memory exporters, installed as the process's global providers (once per test session)."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def total(self, name: str, **attributes: Any) -> float:
        """Sum (counters) or count (histograms) of the points whose attributes include `attributes`."""
        found = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                count: float | None = getattr(point, "count", None)  # histograms
                value: float = getattr(point, "value", 0)  # counters
                found += count or value
        return found
