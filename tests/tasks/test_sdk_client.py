"""The official python SDK client runs tools as tasks through its extension seam (app/toolkit/tasks_client.py):
over HTTP, and in process against the server `python -m app stdio` builds (where authorization runs inside the
SDK). `call_tool` returns what the synchronous call returns; the answer to the tool's question travels through
`tasks/update`, never through the client's elicitation callback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp_types import ElicitRequestParams, ElicitResult

from app.auth.principal import Principal
from app.local.serve import build_local
from app.settings import Settings
from app.toolkit.tasks_client import TasksExtension
from tests.support.calls import mcp_client
from tests.support.servers import ServerThread
from tests.support.tasks import TASK_TOOLS, task_settings
from tests.support.values import TENANT

ARCHIVED = {"action": "accept", "content": {"archived": True}}


async def _archived(request: dict[str, Any]) -> dict[str, Any]:
    assert request["method"] == "elicitation/create"
    return ARCHIVED


async def _never(context: Any, params: ElicitRequestParams) -> ElicitResult:
    raise AssertionError("a task's question goes through tasks/update, not a server request")


async def test_the_sdk_client_runs_a_task_over_http_with_the_synchronous_result(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(**task_settings())
    tasks = TasksExtension(_archived, poll_cap_ms=100)
    bearer = token("notes.read")
    async with mcp_client(server.url, bearer, mode="2026-07-28", extensions=[tasks], elicitation_callback=_never) as c:
        as_task = await c.call_tool("asking_report", {"topic": "kafka", "seconds": 0})
        blocking = await c.call_tool("blocking_job", {"seconds": 0})
    async with mcp_client(server.url, bearer, mode="2026-07-28") as plain:
        synchronous = await plain.call_tool("blocking_job", {"seconds": 0})
    assert len(tasks.handles) == 2 and {h.status for h in tasks.handles} == {"working"}
    assert not as_task.is_error and as_task.structured_content == {"result": "report on kafka: archived=True"}
    assert "input_required" in [state["status"] for state in tasks.seen]
    assert blocking.content == synchronous.content and blocking.structured_content == synchronous.structured_content


async def test_the_server_stdio_serves_runs_tasks_and_authorizes_them_as_the_signed_in_user(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        app_env="development",
        tools={"dir": TASK_TOOLS, "lock_mode": "off"},
        stdio={"data_dir": tmp_path, "allow_plain_cache": True},
        audit={"sink": "off"},
    )
    core, _identity, signed_in = build_local(settings)
    signed_in.append(Principal(TENANT, "sub", "oid", "client", frozenset({"notes.read"}), frozenset(), "i", "2.0", "j"))
    tasks = TasksExtension(_archived, poll_cap_ms=100)
    async with Client(core.mcp, mode="2026-07-28", extensions=[tasks], elicitation_callback=_never) as client:
        report = await client.call_tool("asking_report", {"topic": "kafka", "seconds": 0})
        refused = await client.call_tool("admin_job", {})  # needs notes.admin: refused before any task exists
    assert report.structured_content == {"result": "report on kafka: archived=True"}
    assert len(tasks.handles) == 1  # the refused call made no task
    assert refused.is_error and "notes.admin" in refused.content[0].text  # type: ignore[union-attr]
