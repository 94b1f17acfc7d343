"""The Tasks extension from the bench's side (`bench/tasks.py`): its requests, checked calls with the stdlib client of
bench/mcp_http.py, the tasks the `poll` point polls, and a probe of how soon a task completes under load."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

from bench.mcp_http import Conn, Exchange, ProtocolError, Request, json_result, modern_request, tools_call_request

TOOL = "echo_task"  # bench/tools_tasks/echo_task.py (and bench/tools_tasks_async/): `echo` that may run as a task
EXTENSION = "io.modelcontextprotocol/tasks"
DECLARED = {"extensions": {EXTENSION: {}}}  # the per-request client capabilities that make a call a task
COMPLETE_TIMEOUT_S = 30.0  # how long a check waits for a task of echo_task to complete (it returns at once)
PROBE_INTERVAL_S = 0.2


def call_request(ex: Exchange, text: str, as_task: bool) -> Request:
    """`tools/call echo_task`, declaring the extension (answered with a task handle) or not (with the result)."""
    return tools_call_request(ex, text, TOOL, DECLARED if as_task else None)


def get_request(ex: Exchange, task_id: str) -> Request:
    return modern_request(ex, "tasks/get", {"taskId": task_id}, task_id, DECLARED)


def rpc(conn: Conn, req: Request, what: str) -> dict[str, Any]:
    status, headers, body = conn.post(req)
    if status != 200:
        raise ProtocolError(f"{what} -> HTTP {status}: {body[:300]!r}")
    return json_result(headers, body)


def _echoed(result: dict[str, Any], text: str, what: str) -> None:
    if result.get("isError") or text not in [c.get("text") for c in result.get("content", [])]:
        raise ProtocolError(f"{what} returned an unexpected result: {json.dumps(result)[:300]}")


def handle_of(result: dict[str, Any]) -> str:
    if result.get("resultType") != "task" or not isinstance(result.get("taskId"), str):
        raise ProtocolError(f"tools/call as a task returned no task handle: {json.dumps(result)[:300]}")
    return str(result["taskId"])


def create_task(conn: Conn, ex: Exchange, text: str = "bench-check") -> str:
    return handle_of(rpc(conn, call_request(ex, text, as_task=True), "tools/call as a task"))


def wait_completed(conn: Conn, ex: Exchange, task_id: str, text: str = "bench-check") -> dict[str, Any]:
    """Poll until the task is completed with the echoed text (a failed or cancelled task is an error)."""
    deadline = time.monotonic() + COMPLETE_TIMEOUT_S
    while time.monotonic() < deadline:
        task = rpc(conn, get_request(ex, task_id), "tasks/get")
        if task.get("status") == "completed":
            _echoed(task.get("result", {}), text, "a completed task")
            return task
        if task.get("status") != "working":
            raise ProtocolError(f"the task ended {task.get('status')!r}: {json.dumps(task)[:300]}")
        time.sleep(0.05)
    raise ProtocolError(f"a task of {TOOL} did not complete within {COMPLETE_TIMEOUT_S:g} s")


def check(conn: Conn, ex: Exchange) -> None:
    """One synchronous call and one task, run to completion, both echoing the text."""
    result = rpc(conn, call_request(ex, "bench-check", as_task=False), "tools/call")
    if result.get("resultType", "complete") != "complete":
        raise ProtocolError(f"a call without the extension declared became a task: {json.dumps(result)[:300]}")
    _echoed(result, "bench-check", "tools/call")
    wait_completed(conn, ex, create_task(conn, ex))


def one_task_each(conn: Conn, callers: list[Exchange], batch: int) -> list[str]:
    """A completed task for every caller: created `batch` at a time (under TASKS__MAX_ACTIVE), each run to its end."""
    ids: list[str] = []
    for first in range(0, len(callers), batch):
        group = callers[first : first + batch]
        made = [create_task(conn, ex, f"poll-{first + i}") for i, ex in enumerate(group)]
        for i, (ex, task_id) in enumerate(zip(group, made, strict=True)):
            wait_completed(conn, ex, task_id, f"poll-{first + i}")
        ids += made
    return ids


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class CompletionProbe(threading.Thread):
    """Alongside a creation run: a task every PROBE_INTERVAL_S from callers of its own (so the load's callers keep
    their budgets), then how long each took from creation to completion, by the server's own `createdAt` and
    `lastUpdatedAt`. A task holds its TASKS__MAX_ACTIVE slot for that long."""

    def __init__(self, port: int, path: str, callers: list[Exchange], seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.callers, self.seconds = port, path, callers, seconds
        self.made: list[tuple[Exchange, str]] = []
        self.refused: dict[int, int] = {}

    def run(self) -> None:
        conn, deadline, n = Conn(self.port, self.path), time.monotonic() + self.seconds, 0
        try:
            while time.monotonic() < deadline:
                ex = self.callers[n % len(self.callers)]
                n += 1
                status, headers, body = conn.post(call_request(ex, "probe", as_task=True))
                if status == 200:
                    self.made.append((ex, handle_of(json_result(headers, body))))
                else:
                    self.refused[status] = self.refused.get(status, 0) + 1
                time.sleep(PROBE_INTERVAL_S)
        finally:
            conn.close()

    @property
    def sent(self) -> int:
        return len(self.made) + sum(self.refused.values())

    def summary(self) -> dict[str, Any]:
        """After the run: creation -> completion of each probe task, in ms (p50, p90, max), and the refusals."""
        conn, ms = Conn(self.port, self.path), []
        try:
            for ex, task_id in self.made:
                task = wait_completed(conn, ex, task_id, "probe")
                ms.append((_epoch(task["lastUpdatedAt"]) - _epoch(task["createdAt"])) * 1000)
        finally:
            conn.close()
        ms.sort()
        out: dict[str, Any] = {"tasks": len(ms), "refused": {str(k): v for k, v in sorted(self.refused.items())}}
        if ms:
            out |= {"p50_ms": ms[len(ms) // 2], "p90_ms": ms[int(len(ms) * 0.9)], "max_ms": ms[-1]}
        return out
