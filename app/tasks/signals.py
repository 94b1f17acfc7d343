"""What the task parts report and keep per process: the background runs, their audit records, span and metrics.

Audit and spans carry a task's digest, never its id (which reads a task like a bearer token would).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

from app.auth.principal import Principal
from app.core.taskids import task_digest
from app.observability.audit_fields import principal_fields
from app.observability.observe import Observer
from app.observability.telemetry import DURATION_BUCKETS, SERVER_NAME
from app.tasks.records import LOST, Record, now_ms, wire

log = logging.getLogger("app.tasks")
_meter = metrics.get_meter("secure-mcp-server")
TASK_DURATION = _meter.create_histogram(
    "mcp.server.task.duration",
    unit="s",
    description="How long a task ran, from its creation to its terminal state, by tool and final status.",
    explicit_bucket_boundaries_advisory=[*DURATION_BUCKETS, 900, 1800, 3600],
)
TASKS_RUNNING = _meter.create_up_down_counter(
    "mcp.server.tasks.running", unit="{task}", description="Tasks running on this replica (the queue depth)."
)
_tracer = trace.get_tracer("secure-mcp-server")


def refused(admission: str) -> str:
    if admission == "principal":
        return "too many tasks running for this caller (TASKS__MAX_PER_PRINCIPAL); try again when one has finished"
    return "this server runs or keeps as many tasks as it may (TASKS__MAX_ACTIVE, TASKS__MEMORY_MAX_BYTES); try later"


class TaskSignals:
    """Per server: the runs in this process (so a local cancel is immediate), and how each is observed."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.running: dict[str, tuple[asyncio.Future[Any], Any]] = {}
        self._runs: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    def start(self, run: Coroutine[Any, Any, None], record: Record) -> None:
        task = asyncio.get_running_loop().create_task(run, name=f"task {task_digest(record['id'])}")
        self._runs.add(task)
        TASKS_RUNNING.add(1, self.observer.labels)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._runs.discard(task)
        TASKS_RUNNING.add(-1, self.observer.labels)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task bookkeeping failed", extra={"error": type(error).__name__})

    def cancel_local(self, task_id: str) -> bool:
        """Cancel the run of `task_id` if it is in this process (a cancel sent to another replica is seen within a
        tick of the run looking at its record)."""
        running = self.running.get(task_id)
        if running is None:
            return False
        running[0].cancel()
        return True

    def wake(self, task_id: str) -> None:
        """An answer arrived for `task_id`: wake its run if it is here."""
        running = self.running.get(task_id)
        if running is not None:
            running[1].wake.set()

    async def aclose(self, store: Any) -> None:
        """Shutdown: end every run here; each is failed (the server stopped), never left `working`."""
        for task_id, (tool, _) in list(self.running.items()):
            await store.change(task_id, lambda r: _stopped(r))
            tool.cancel()
        if self._runs:
            await asyncio.wait(set(self._runs), timeout=5)

    # ---- what a client is shown, audit, spans, metrics -----------------------------------------------------------
    @staticmethod
    def shown(record: Record) -> dict[str, Any]:
        return wire(record)

    def audit(self, record: Record, principal: Principal | None, action: str, **fields: Any) -> None:
        audit = self.observer.audit
        if audit.enabled:
            audit.record(
                "task",
                action=action,
                task=task_digest(record["id"]),
                target=record["tool"] if record["tool"] in self.observer.tools else None,
                principal=principal_fields(principal),
                **fields,
            )

    def finished(self, record: Record, principal: Principal, status: str, seconds: float) -> None:
        self.audit(record, principal, status, duration_ms=round(seconds * 1000, 3))
        if self.observer.telemetry.metrics:
            tool = record["tool"] if record["tool"] in self.observer.tools else "_OTHER"
            TASK_DURATION.record(seconds, {"gen_ai.tool.name": tool, "task.status": status, **self.observer.labels})

    def trace_parent(self) -> str | None:
        """The creating request's span, kept with the task so its run's span can link to it."""
        if not self.observer.telemetry.tracing:
            return None
        context = trace.get_current_span().get_span_context()
        return f"{context.trace_id:032x}-{context.span_id:016x}" if context.is_valid else None

    @contextlib.contextmanager
    def span(self, record: Record) -> Iterator[None]:
        """A span for the run, in a trace of its own (it outlives the request), linked to the creating request's."""
        if not self.observer.telemetry.tracing:
            yield
            return
        links = []
        if isinstance(record.get("trace"), str):
            trace_id, _, span_id = record["trace"].partition("-")
            parent = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(TraceFlags.SAMPLED))
            links.append(Link(parent))
        root = trace.set_span_in_context(NonRecordingSpan(SpanContext(0, 0, False)), otel_context.Context())
        attributes = {"mcp.task.id_digest": task_digest(record["id"]), "gen_ai.tool.name": record["tool"]}
        if self.observer.server:
            attributes[SERVER_NAME] = self.observer.server
        with _tracer.start_as_current_span(f"task {record['tool']}", context=root, links=links, attributes=attributes):
            yield


def _stopped(record: Record) -> Record | None:
    if record["status"] in {"completed", "failed", "cancelled"}:
        return None
    error = {"code": -32603, "message": LOST}
    return {**record, "status": "failed", "message": LOST, "error": error, "inputs": {}, "answers": {},
            "updated": now_ms()}  # fmt: skip
