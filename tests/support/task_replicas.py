"""The Tasks extension over raw JSON-RPC at 2026-07-28 (`RawTasks`), for tests that pin each request to one replica,
or send params no SDK client would; and app replicas that run the task test tools against one Redis behind nginx."""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx2

from tests.support.entra import EntraStandIn
from tests.support.nginx import AppProcess, nginx_in_front, start_app
from tests.support.redis import RedisServer
from tests.support.servers import free_port
from tests.support.values import SUPPORT

TASK_TOOLS = SUPPORT / "task_tools"
EXTENSION = "io.modelcontextprotocol/tasks"
VERSION = "2026-07-28"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
LOST = "the server running this task stopped before it finished"


def meta(tasks: bool = True) -> dict[str, Any]:
    """A 2026-07-28 request's `_meta`: the version, the client, its capabilities (the extension when `tasks`)."""
    capabilities: dict[str, Any] = {"elicitation": {"form": {}}}
    if tasks:
        capabilities["extensions"] = {EXTENSION: {}}
    return {
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-tasks-test", "version": "0"},
    }


def payload_of(response: httpx2.Response) -> Any:
    """The JSON-RPC message of a response: a JSON body, or the last `data:` line of an SSE stream."""
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        data = [d for d in data if d]
        return json.loads(data[-1]) if data else None
    return json.loads(text) if text.strip() else None


@dataclass
class Answer:
    """One HTTP exchange: its status, headers and JSON-RPC message."""

    status: int
    headers: httpx2.Headers
    message: Any

    @property
    def result(self) -> dict[str, Any]:
        assert self.status == 200 and isinstance(self.message, dict) and "result" in self.message, self
        return self.message["result"]  # type: ignore[no-any-return]

    @property
    def ack(self) -> dict[str, Any]:
        """An acknowledgement's fields (`{}` for tasks/update and tasks/cancel), without the envelope the SDK adds to
        every result (`resultType`, `_meta`)."""
        return {k: v for k, v in self.result.items() if k not in {"resultType", "_meta"}}

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.message, dict) and "error" in self.message, self
        return self.message["error"]  # type: ignore[no-any-return]


@dataclass
class RawTasks:
    """A caller (one bearer token) of one URL; `host` is the Host header (a replica reached directly answers only to
    the public host nginx forwards)."""

    url: str
    token: str
    host: str | None = None
    path: str = "/mcp"
    timeout: float = 30.0
    _ids: Iterator[int] = field(default_factory=lambda: count(1))

    def send(self, method: str, params: Any, name: str | None = None, **headers: str) -> Answer:
        """Post one request; `name` is the Mcp-Name header (none when None)."""
        sent = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": VERSION,
            "Mcp-Method": method,
            **({"Mcp-Name": name} if name is not None else {}),
            **({"Host": self.host} if self.host else {}),
            **headers,
        }
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        response = httpx2.post(f"{self.url}{self.path}", content=json.dumps(body), headers=sent, timeout=self.timeout)
        try:
            message = payload_of(response)
        except ValueError:
            message = response.text
        return Answer(response.status_code, response.headers, message)

    def call(self, tool: str, arguments: dict[str, Any] | None = None, tasks: bool = True) -> Answer:
        params = {"name": tool, "arguments": arguments or {}, "_meta": meta(tasks)}
        return self.send("tools/call", params, tool)

    def start(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """A task of `tool`; its id."""
        created = self.call(tool, arguments).result
        assert created["resultType"] == "task" and created["status"] == "working", created
        return str(created["taskId"])

    def get(self, task_id: str) -> Answer:
        return self.send("tasks/get", {"taskId": task_id, "_meta": meta()}, task_id)

    def update(self, task_id: str, responses: dict[str, Any]) -> Answer:
        return self.send("tasks/update", {"taskId": task_id, "inputResponses": responses, "_meta": meta()}, task_id)

    def cancel(self, task_id: str) -> Answer:
        return self.send("tasks/cancel", {"taskId": task_id, "_meta": meta()}, task_id)

    def wait_for(self, task_id: str, *statuses: str, within: float = 30.0) -> dict[str, Any]:
        """Poll until the task is in one of `statuses` (failing at once if it ends in another); the DetailedTask."""
        deadline = time.monotonic() + within
        while True:
            task = self.get(task_id).result
            if task["status"] in statuses:
                return task
            assert task["status"] not in TERMINAL, f"ended as {task['status']}, not {statuses}: {task}"
            assert time.monotonic() < deadline, f"still {task['status']} after {within:.0f} s: {task}"
            time.sleep(0.5)  # within the caller's 120 requests a minute, however long a loaded machine takes


def accept(**content: Any) -> dict[str, Any]:
    """An ElicitResult accepting the form with `content`."""
    return {"action": "accept", "content": content}


@dataclass
class TaskReplica:
    """One `python -m app` serving the task tools; its own TASK_TOOL_MARKS folder tells which replica ran a tool."""

    app: AppProcess
    marks: Path

    @property
    def url(self) -> str:
        return self.app.url

    def mark(self, run: str, event: str) -> bool:
        return (self.marks / f"{run}.{event}").exists()


def task_replica(entra: EntraStandIn, workdir: Path, public: str, redis: RedisServer, **env: str) -> TaskReplica:
    """A replica in production mode, its tasks in `redis` (MCP__TASK_STORE auto), started (not yet healthy)."""
    marks = Path(tempfile.mkdtemp(prefix="marks-", dir=workdir))
    values = {"TOOLS__DIR": str(TASK_TOOLS), "RATE_LIMIT__STORAGE_URI": redis.uri, "TASK_TOOL_MARKS": str(marks)}
    return TaskReplica(start_app(entra, workdir, public, **values, **env), marks)


@dataclass
class TaskCluster:
    """Two replicas sharing one Redis behind nginx (`public`); `host` is the Host every replica answers to."""

    public: str
    replicas: list[TaskReplica]
    redis: RedisServer
    workdir: Path
    env: dict[str, str]

    @property
    def host(self) -> str:
        return self.public.split("://", 1)[1]

    def direct(self, replica: TaskReplica, token: str) -> RawTasks:
        """A caller whose every request goes to `replica` itself."""
        return RawTasks(replica.url, token, self.host)

    def through_nginx(self, token: str) -> RawTasks:
        return RawTasks(self.public, token)


@contextmanager
def task_cluster(entra: EntraStandIn, **env: str) -> Iterator[TaskCluster]:
    """Redis, two replicas with `env` and nginx in front; all stopped on the way out."""
    workdir = Path(tempfile.mkdtemp(prefix="task-replicas-"))
    workdir.chmod(0o755)  # nginx workers drop to an unprivileged user when the test runs as root
    redis = RedisServer().start()
    listen = free_port()
    public = f"http://127.0.0.1:{listen}"
    replicas = [task_replica(entra, workdir, public, redis, **env) for _ in range(2)]
    try:
        with nginx_in_front(workdir, listen, [r.app for r in replicas]) as public:
            yield TaskCluster(public, replicas, redis, workdir, env)
    finally:
        redis.close()


def routed_to(cluster: TaskCluster, replica: TaskReplica, mint: Callable[[int], str], tries: int = 40) -> RawTasks:
    """A caller through nginx whose requests nginx sends to `replica`: nginx hashes the Authorization header, so
    tokens of one principal (`mint(n)`: the same caller, a different token per `n`) are tried until a plain call of
    `long_job` leaves its mark in `replica`'s folder."""
    for n in range(tries):
        caller = cluster.through_nginx(mint(n))
        run = f"route-{secrets.token_hex(6)}"
        assert caller.call("long_job", {"seconds": 0, "run": run}, tasks=False).status == 200
        if replica.mark(run, "finished"):
            return caller
    raise AssertionError(f"nginx sent none of {tries} tokens to {replica.url}")
