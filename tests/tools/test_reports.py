"""The shipped long-running tool: a normal call for clients without the Tasks extension, and a task for clients that
declare it (the SDK client with `TasksExtension`); the user is asked mid-call either way."""

from typing import Any

from mcp_types import ElicitRequestParams, ElicitResult

from app.toolkit.tasks_client import TasksExtension
from app.toolkit.testing import TestServer


async def _include_archived(context: Any, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"archived": True})


async def test_a_client_without_tasks_gets_the_report_in_one_call(mcp_server: TestServer) -> None:
    token = mcp_server.issuer.user_token(["notes.read"])
    async with mcp_server.client(token, mode="2026-07-28", elicitation_callback=_include_archived) as client:
        result = await client.call_tool("compile_report", {"topic": "kafka", "seconds": 0})
    assert not result.is_error
    text = (result.structured_content or {}).get("result", "")
    assert text.startswith("Report on 'kafka' for ") and text.endswith("(including archived notes).")


async def test_as_a_task_the_report_reports_progress_asks_through_the_task_and_ends_the_same(
    mcp_server: TestServer,
) -> None:
    async def archived(request: dict[str, Any]) -> dict[str, Any]:
        return {"action": "accept", "content": {"archived": True}}

    tasks = TasksExtension(archived, poll_cap_ms=100)
    token = mcp_server.issuer.user_token(["notes.read"])
    async with mcp_server.client(token, mode="2026-07-28", extensions=[tasks], elicitation_callback=_never) as client:
        result = await client.call_tool("compile_report", {"topic": "kafka", "seconds": 0.3})
    text = (result.structured_content or {}).get("result", "")
    assert text.startswith("Report on 'kafka' for ") and text.endswith("(including archived notes).")
    statuses = [state["status"] for state in tasks.seen]
    assert statuses[0] in {"working", "input_required"} and statuses[-1] == "completed" and "input_required" in statuses
    messages = {state.get("statusMessage") for state in tasks.seen}
    assert "asking which notes to include" in messages


async def _never(context: Any, params: ElicitRequestParams) -> ElicitResult:
    raise AssertionError("a task asks through tasks/update")
