"""The TypeScript SDK runs tools as tasks: its v2 client (`@modelcontextprotocol/client`, protocol 2026-07-28) with
the extension's own client package (`@modelcontextprotocol/ext-tasks`), both from npm, in Node
(tests/support/ts_tasks_client.mjs). A task's question reaches its input handler and the answer goes back through
`tasks/update`; the finished task's result is the synchronous call's; a cancel reaches the tool.

Production settings, a real uvicorn, Entra stand-in tokens; the tools are tests/support/task_tools/jobs.py. Needs Node
22 and the packages (`.ci/run` installs them): missing, the tests are skipped with the reason, and under CI they fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp_types import ElicitRequestParams, ElicitResult

from tests.support.calls import mcp_client
from tests.support.servers import ServerThread
from tests.support.tasks import ELICITATION, TasksClient, call_result, task_settings, wait_for
from tests.support.ts_tasks import require_ts_tasks, run_ts_tasks

pytestmark = pytest.mark.slow
READ = "notes.read"
REPORT = {"result": "report on kafka: archived=True"}


@pytest.fixture(autouse=True)
def _ts_tasks_client() -> None:
    require_ts_tasks()


@pytest.fixture
def server(serve: Callable[..., ServerThread], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServerThread:
    monkeypatch.setenv("TASK_TOOL_MARKS", str(tmp_path))  # read by the tool, in this process's server
    return serve(**task_settings(poll_interval_ms=100))  # the clients poll at the server's suggestion


async def _archived(context: Any, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"archived": True})


async def test_the_typescript_client_answers_a_tasks_question_and_gets_the_synchronous_result(
    server: ServerThread, token: Callable[..., str]
) -> None:
    bearer = token(READ)
    run = await run_ts_tasks(f"{server.url}/mcp", bearer, "ask")
    async with mcp_client(server.url, bearer, mode="2026-07-28", elicitation_callback=_archived) as python:
        synchronous = (await python.call_tool("asking_report", {"topic": "kafka", "seconds": 0})).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    assert run["kind"] == "task"
    assert "input_required" in run["statuses"] and run["statuses"][-1] == "completed", run["statuses"]
    assert run["asked"] == ["Include archived notes about 'kafka'?"]
    assert run["outcome"] == "completed"
    assert run["result"]["structuredContent"] == REPORT
    assert call_result(run["result"]) == call_result(synchronous)


async def test_the_typescript_client_cancels_a_running_task_and_the_tool_sees_it(
    server: ServerThread, token: Callable[..., str], tmp_path: Path
) -> None:
    run = await run_ts_tasks(f"{server.url}/mcp", token(READ), "cancel", "ts-cancel")
    assert run == {"kind": "task", "outcome": "cancelled", "status": "cancelled"}
    assert (tmp_path / "ts-cancel.started").exists()
    await wait_for((tmp_path / "ts-cancel.cancelled").exists)
    assert not (tmp_path / "ts-cancel.finished").exists()


async def test_the_typescript_client_runs_a_plain_def_tool_as_a_task_with_the_synchronous_result(
    server: ServerThread, token: Callable[..., str]
) -> None:
    bearer = token(READ)
    run = await run_ts_tasks(f"{server.url}/mcp", bearer, "plain")
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        plain = TasksClient(http, bearer, declare=False, capabilities=ELICITATION)
        synchronous = await plain.call("blocking_job", {"seconds": 0})
    assert run["kind"] == "task" and run["outcome"] == "completed"
    assert synchronous.get("resultType", "complete") == "complete", synchronous  # a normal call, not a task
    assert call_result(run["result"]) == call_result(synchronous)
