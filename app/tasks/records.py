"""A task as the store keeps it (a JSON object), what a client is shown of it, and what tasks are configured with.

A record: `id`, `tool`, `owner` (principal key and client app), `status`, `message`, `created` / `updated` (epoch
ms), `ttl_ms`, `poll_ms`, `lease` (epoch ms the running replica last promised to be alive until), `cancel`
(requested), `inputs` (outstanding questions by key), `answers` (their answers, until the run takes them), `asked`
(how many questions were ever issued: keys are never reused), and at the end `result` or `error`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
Record = dict[str, Any]
NOT_FOUND = "Failed to retrieve task: Task not found"  # unknown, expired, or another caller's: the same words
LOST = "the server running this task stopped before it finished"


@dataclass(frozen=True)
class TaskOptions:
    """TASKS__* and MCP__TASK_STORE, as the task parts take them."""

    max_per_principal: int = 10
    max_active: int = 100
    max_run_seconds: float = 900.0
    ttl_seconds: int = 3600
    poll_interval_ms: int = 2000
    lease_seconds: float = 15.0
    max_answer_bytes: int = 65_536


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_record(task_id: str, tool: str, owner: str, options: TaskOptions, trace: str | None) -> Record:
    now = now_ms()
    return {
        "id": task_id,
        "tool": tool,
        "owner": owner,
        "status": "working",
        "message": None,
        "created": now,
        "updated": now,
        "ttl_ms": options.ttl_seconds * 1000,
        "poll_ms": options.poll_interval_ms,
        "lease": now + int(options.lease_seconds * 1000),
        "cancel": False,
        "inputs": {},
        "answers": {},
        "asked": 0,
        "trace": trace,
    }


def expired(record: Record, now: int) -> bool:
    return bool(now >= record["created"] + record["ttl_ms"])


def lost(record: Record, now: int) -> bool:
    """Still running on paper, but its replica stopped renewing the lease: it will never finish."""
    return bool(record["status"] not in TERMINAL and now > record["lease"])


def mark_lost(record: Record, now: int) -> Record:
    return {
        **record,
        "status": "failed",
        "message": LOST,
        "error": {"code": -32603, "message": LOST},
        "inputs": {},
        "answers": {},
        "updated": now,
    }


def wire(record: Record) -> dict[str, Any]:
    """The `DetailedTask` a client is shown (tasks/get, CreateTaskResult), without `resultType`."""
    shown: dict[str, Any] = {
        "taskId": record["id"],
        "status": record["status"],
        "createdAt": iso(record["created"]),
        "lastUpdatedAt": iso(record["updated"]),
        "ttlMs": record["ttl_ms"],
        "pollIntervalMs": record["poll_ms"],
    }
    if record.get("message"):
        shown["statusMessage"] = record["message"]
    status = record["status"]
    if status == "input_required":
        shown["inputRequests"] = dict(record["inputs"])
    elif status == "completed":
        shown["result"] = record.get("result", {})
    elif status == "failed":
        shown["error"] = record.get("error", {"code": -32603, "message": "failed"})
    return shown


def owner_of(principal_key: str, client_id: str) -> str:
    """Who a task belongs to: the principal (tenant + object id, or the app) through one client app."""
    return f"{principal_key}|{client_id}"
