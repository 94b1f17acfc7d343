"""A task's run is observed: a span of its own linked to the creating request's, its duration, the running count."""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread
from tests.support.tasks import TasksClient, task_settings


async def test_a_run_has_its_own_span_linked_to_the_call_and_a_duration(
    otel: OtelMemory, serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    async with httpx2.AsyncClient(base_url=server.url, timeout=10) as http:
        client = TasksClient(http, token("notes.read"))
        handle = await client.create("long_job", {"seconds": 0.2})
        assert (await client.finished(handle["taskId"]))["status"] == "completed"

    spans = otel.spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    (call,) = [s for s in spans if s.name == "tools/call long_job"]
    (run,) = [s for s in spans if s.name == "task long_job"]
    assert run.parent is None and run.context.trace_id != call.context.trace_id  # the run outlives the request
    (link,) = run.links
    assert link.context.span_id == call.context.span_id and by_id[link.context.span_id] is call
    attributes = run.attributes or {}
    assert str(attributes["mcp.task.id_digest"]).startswith("sha256:")
    assert handle["taskId"] not in str(attributes) and attributes["gen_ai.tool.name"] == "long_job"
    assert otel.total("mcp.server.task.duration", **{"gen_ai.tool.name": "long_job", "task.status": "completed"}) >= 1
    running = otel.points("mcp.server.tasks.running")
    assert running and sum(point.value for point in running) == 0  # started, then ended: back to none
