"""A raw JSON-RPC client of the MCP Tasks extension (`io.modelcontextprotocol/tasks`) at protocol 2026-07-28, written
from the extension's text (experimental-ext-tasks docs/specification/draft/tasks.mdx) and the 2026-07-28 transport
rules, with no app code: every request carries the `_meta` envelope (protocol version, client info, per-request
client capabilities) and the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers.

Also the serving helpers of tests/tasks/: the task tools' folder, and settings for them."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from tests.support.values import SUPPORT

EXTENSION = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"
TASK_TOOLS = SUPPORT / "task_tools"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
NOT_FOUND = (-32602, "Failed to retrieve task: Task not found")
ELICITATION: dict[str, Any] = {"elicitation": {"form": {}}}
# Asking a stuck server again is no timing assertion: this only bounds how long a broken run makes a test wait.
GIVE_UP_SECONDS = 30.0


def task_settings(tmp: Path | None = None, **tasks: Any) -> dict[str, Any]:
    """`serve(**...)` overrides: the task tools, TASKS__* limits, and (with `tmp`) an audit file there."""
    overrides: dict[str, Any] = {"tools": {"dir": TASK_TOOLS}}
    if tasks:
        overrides["tasks"] = tasks
    if tmp is not None:
        overrides["audit"] = {"sink": f"file:{tmp / 'audit.jsonl'}"}
    return overrides


def audit_records(tmp: Path, event: str = "task") -> list[dict[str, Any]]:
    path = tmp / "audit.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r.get("event") == event]


class TasksClient:
    """One client app of one user: `declare` puts the extension in every request's per-request capabilities."""

    _ids = itertools.count(1)

    def __init__(
        self,
        http: httpx2.AsyncClient,
        token: str | None,
        *,
        declare: bool = True,
        capabilities: dict[str, Any] | None = None,
        version: str = MODERN,
        path: str = "/mcp",
    ) -> None:
        self.http, self.token, self.version, self.path = http, token, version, path
        self.capabilities: dict[str, Any] = dict(capabilities or {})
        if declare:
            self.capabilities["extensions"] = {EXTENSION: {}}

    def request(self, method: str, params: dict[str, Any], name: str | None) -> tuple[dict[str, str], dict[str, Any]]:
        """Headers and body of one request, exactly as the 2026-07-28 transport and the extension say."""
        headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": self.version}
        headers["Mcp-Method"] = method
        if name is not None:
            headers["Mcp-Name"] = name
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        meta = {
            "io.modelcontextprotocol/protocolVersion": self.version,
            "io.modelcontextprotocol/clientInfo": {"name": "tasks-raw-client", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
        }
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": {**params, "_meta": meta}}
        return headers, body

    async def send(
        self, method: str, params: dict[str, Any], name: str | None = None, **header_overrides: str
    ) -> httpx2.Response:
        headers, body = self.request(method, params, name)
        return await self.http.post(self.path, json=body, headers={**headers, **header_overrides})

    async def rpc(self, method: str, params: dict[str, Any], name: str | None = None, **headers: str) -> dict[str, Any]:
        """The JSON-RPC response message (`result` or `error`), whether sent as JSON or as one SSE event."""
        return message_of(await self.send(method, params, name, **headers))

    async def result(self, method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        message = await self.rpc(method, params, name)
        assert "result" in message, message
        return message["result"]  # type: ignore[no-any-return]

    # ---- the extension's methods --------------------------------------------------------------------------------
    async def call(self, tool: str, arguments: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        return await self.result("tools/call", {"name": tool, "arguments": arguments or {}, **extra}, tool)

    async def create(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A tools/call answered with a task handle (CreateTaskResult)."""
        handle = await self.call(tool, arguments)
        assert handle.get("resultType") == "task", handle
        return handle

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self.result("tasks/get", {"taskId": task_id}, task_id)

    async def update(self, task_id: str, responses: dict[str, Any]) -> dict[str, Any]:
        return await self.result("tasks/update", {"taskId": task_id, "inputResponses": responses}, task_id)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self.result("tasks/cancel", {"taskId": task_id}, task_id)

    async def discover(self) -> dict[str, Any]:
        return await self.result("server/discover", {})

    async def poll(self, task_id: str, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """`tasks/get` until `until(task)`, at the task's own pollIntervalMs (capped, for test speed)."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while True:
            task = await self.get(task_id)
            if until(task):
                return task
            assert time.monotonic() < deadline, f"the task never got there: {task}"
            await asyncio.sleep(
                min(task.get("pollIntervalMs", 300), 300) / 1000
            )  # ~3/s: 30 s of it stays in 120/minute

    async def finished(self, task_id: str) -> dict[str, Any]:
        return await self.poll(task_id, lambda t: t["status"] in TERMINAL)

    async def status(self, task_id: str, status: str) -> dict[str, Any]:
        return await self.poll(task_id, lambda t: t["status"] == status or t["status"] in TERMINAL)


def message_of(response: httpx2.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        messages: list[dict[str, Any]] = [json.loads(e) for e in events if e]
        return next(m for m in reversed(messages) if "result" in m or "error" in m)
    return response.json()  # type: ignore[no-any-return]


def call_result(result: dict[str, Any]) -> dict[str, Any]:
    """What a CallToolResult says (content, isError, structuredContent), for comparing a task's with a call's."""
    return {key: result.get(key) for key in ("content", "isError", "structuredContent")}


async def wait_for(check: Callable[[], bool]) -> None:
    """Until `check()` (evidence another party leaves, e.g. a mark file); bounded, never a timing assertion."""
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while not check():
        assert time.monotonic() < deadline, "the evidence never appeared"
        await asyncio.sleep(0.02)


def is_ack(result: dict[str, Any]) -> bool:
    """The extension's empty acknowledgement (`resultType: "complete"`, nothing else but `_meta`)."""
    return result.get("resultType", "complete") == "complete" and set(result) <= {"resultType", "_meta"}


HANDSHAKE = "2025-11-25"


async def handshake_request(
    http: httpx2.AsyncClient, token: str, method: str, params: dict[str, Any], path: str = "/mcp"
) -> dict[str, Any]:
    """`method` in a handshake-era (2025-11-25) session: initialize, initialized, then the request."""
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {token}"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE,
            "capabilities": {},
            "clientInfo": {"name": "tasks-raw-client", "version": "0"},
        },
    }
    opened = await http.post(path, json=init, headers=headers)
    assert message_of(opened)["result"]["protocolVersion"] == HANDSHAKE, opened.text
    headers["MCP-Protocol-Version"] = HANDSHAKE
    if session := opened.headers.get("mcp-session-id"):
        headers["Mcp-Session-Id"] = session
    await http.post(path, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    body = {"jsonrpc": "2.0", "id": 2, "method": method, "params": params}
    return message_of(await http.post(path, json=body, headers=headers))
