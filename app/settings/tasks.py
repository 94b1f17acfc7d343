"""The Tasks extension's limits (TASKS__*): how many tasks, how long they run and are kept, how clients poll."""

from __future__ import annotations

from pydantic import Field, model_validator

from app.settings.fields import Section


class TasksSettings(Section):
    """Long-running tools (`@tool(task=...)`, the MCP Tasks extension): caps, lifetimes and polling."""

    max_per_principal: int = Field(default=10, ge=1, le=10_000)
    """Tasks one caller may have running at once, per server; one more is refused with 429 (never queued)."""
    max_active: int = Field(default=100, ge=1, le=1_000_000)
    """Tasks running at once on a server, across every caller (and every replica sharing Redis); one more is
    refused with 503."""
    max_run_seconds: int = Field(default=900, ge=1, le=86_400)
    """How long a task may run before it is cancelled (its result is then the tool error a timed-out call gets);
    it replaces `SECURITY__TOOL_TIMEOUT_SECONDS` for calls that run as tasks."""
    ttl_seconds: int = Field(default=3600, ge=60, le=604_800)
    """How long a task and its result are kept from its creation (the `ttlMs` clients are told); after that it is
    unknown. Must be longer than `TASKS__MAX_RUN_SECONDS`."""
    poll_interval_ms: int = Field(default=2000, ge=100, le=600_000)
    """The polling interval suggested to clients (`pollIntervalMs`). Polls spend from the caller's
    `RATE_LIMIT__DEFAULT` like any request: at 120/minute, a caller can poll four tasks at 2 s."""
    lease_seconds: int = Field(default=15, ge=3, le=3600)
    """How long a replica's promise to keep running a task lasts (it renews it every third of this): a task whose
    replica died reads as `failed` at most this long after."""
    memory_max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024 * 1024, le=64 * 1024**3)
    """The memory store's budget for tasks and results (`MCP__TASK_STORE=memory`): past it, new tasks are refused
    with 503 until old ones expire. Each caller keeps at most its 100 latest finished tasks there. (In Redis, every
    task is kept for `TASKS__TTL_SECONDS`: size Redis for it.)"""
    max_answer_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    """The largest single answer (`inputResponses` entry) `tasks/update` takes."""

    @model_validator(mode="after")
    def _kept_longer_than_run(self) -> TasksSettings:
        if self.ttl_seconds <= self.max_run_seconds:
            raise ValueError(
                "TASKS__TTL_SECONDS must be longer than TASKS__MAX_RUN_SECONDS (a task outliving its record)"
            )
        return self
