"""Two MCP servers in one app, each with task tools: a task belongs to the server that created it. The same user
(each server's own token) and the same tool name at the other server's path find nothing, and each server's caps
count only its own tasks."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx2

from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread
from tests.support.tasks import NOT_FOUND, TASK_TOOLS, TasksClient
from tests.support.values import CLIENT_ID, SUPPORT, TENANT

SECOND_ID = "b2000000-0000-4000-8000-00000000b222"
SECOND = {
    "path": "/b/mcp",
    "client_id": SECOND_ID,
    "tools_dir": str(SUPPORT / "task_tools_b"),
    "lock_file": str(SUPPORT / "task_tools_b" / "tools.lock"),  # its own (absent: test servers only warn)
}


async def test_a_task_is_found_only_at_the_server_that_created_it(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(tools={"dir": TASK_TOOLS}, servers={"second": SECOND}, tasks={"max_per_principal": 1})
    first_token = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="notes.read")
    second_token = entra.token(tenant=TENANT, audience=SECOND_ID, scopes="notes.read")  # the same user
    async with httpx2.AsyncClient(base_url=server.url, timeout=30) as http:
        first, second = TasksClient(http, first_token), TasksClient(http, second_token, path="/b/mcp")
        discovered = await second.discover()
        assert "io.modelcontextprotocol/tasks" in discovered["capabilities"]["extensions"]
        running = (await first.create("long_job", {"seconds": 30}))["taskId"]
        # The first server's cap (1 per caller) is full; the second server's is its own.
        done = (await second.create("long_job"))["taskId"]
        assert (await second.finished(done))["result"]["structuredContent"] == {"result": "second server's long_job"}
        extra: Mapping[str, object]
        for method, extra in (("tasks/get", {}), ("tasks/update", {"inputResponses": {}}), ("tasks/cancel", {})):
            refused = await second.rpc(method, {"taskId": running, **extra}, running)
            assert (refused["error"]["code"], refused["error"]["message"]) == NOT_FOUND, refused
            crossed = await first.rpc(method, {"taskId": done, **extra}, done)
            assert (crossed["error"]["code"], crossed["error"]["message"]) == NOT_FOUND, crossed
        assert (await first.get(running))["status"] == "working"  # untouched by the other server's cancel
        await first.cancel(running)
        assert (await first.finished(running))["status"] == "cancelled"
