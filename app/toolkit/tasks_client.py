"""`TasksExtension` for the official python SDK client: it runs tools as tasks (the MCP Tasks extension), for tests
of task tools (docs/tasks.md) and for python clients until the SDK implements the extension itself.

Built on the SDK client's extension seam (`ClientExtension`, a `ResultClaim` for `resultType: "task"`, `Request`
types with `name_param` for the `Mcp-Name` header), from the extension's text: a `tools/call` answered with a task
handle is polled with `tasks/get`, questions in `inputRequests` are answered with `tasks/update` through `answer`,
and `call_tool` returns the completed task's `result` (a failed or cancelled task raises `MCPError`).

Example:
    tasks = TasksExtension(answer=lambda request: ...)
    async with Client(transport, mode="2026-07-28", extensions=[tasks]) as client:
        result = await client.call_tool("compile_report", {"topic": "kafka"})
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, Request, RequestParams, Result
from pydantic import ConfigDict, Field

EXTENSION = "io.modelcontextprotocol/tasks"
Answer = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]  # an inputRequest -> its inputResponse


class CreateTaskResult(Result):
    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskParams):
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class GetTask(Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param = "taskId"


class UpdateTask(Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param = "taskId"


class TaskState(Result):
    model_config = ConfigDict(extra="allow")


class TasksExtension(ClientExtension):
    """Declares the extension on every request and resolves task handles; `seen` keeps every state polled.

    Args:
        answer: answers one `inputRequests` entry (`{"method": "elicitation/create", "params": ...}`) with its
            response (an `ElicitResult` or `CreateMessageResult` as JSON); None leaves questions unanswered.
        poll_cap_ms: poll at most this long apart, whatever `pollIntervalMs` suggests (tests, which need no 2 s
            waits); None (default) polls as the server suggests: polls count against the caller's rate limit.
    """

    identifier = EXTENSION

    def __init__(self, answer: Answer | None = None, poll_cap_ms: int | None = None) -> None:
        self.answer, self.poll_cap_ms = answer, poll_cap_ms
        self.handles: list[CreateTaskResult] = []
        self.seen: list[dict[str, Any]] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self._resolve)]

    async def _resolve(self, handle: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        answered: set[str] = set()
        while True:
            state = await ctx.session.send_request(GetTask(params=TaskParams(taskId=handle.task_id)), TaskState)
            task = state.model_dump(by_alias=True, mode="json", exclude_none=True)
            self.seen.append(task)
            if task["status"] == "completed":
                return CallToolResult.model_validate(task["result"])
            if task["status"] in {"failed", "cancelled"}:
                error = task.get("error") or {"code": -32603, "message": task["status"]}
                raise MCPError(code=error["code"], message=error["message"])
            fresh = {k: v for k, v in task.get("inputRequests", {}).items() if k not in answered}
            if fresh and self.answer is not None:
                responses = {key: await self.answer(request) for key, request in fresh.items()}
                await ctx.session.send_request(
                    UpdateTask(params=UpdateParams(taskId=handle.task_id, inputResponses=responses)), TaskState
                )
                answered |= set(responses)
            interval = task.get("pollIntervalMs") or 1000
            await asyncio.sleep((interval if self.poll_cap_ms is None else min(interval, self.poll_cap_ms)) / 1000)
