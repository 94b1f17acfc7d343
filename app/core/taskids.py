"""Task ids of the MCP Tasks extension: 192 random bits, then the tool the task runs.

The tool in the id lets authorization decide a `tasks/*` request before dispatch, from the request alone, exactly as
it decides the `tools/call` that made the task (a token that lost the tool's scope gets the same 403 step-up). The
random part is what makes an id unguessable; the store keys by the whole id, so editing the tool part finds nothing.
"""

from __future__ import annotations

import hashlib
import secrets

_RANDOM_CHARS = 32  # token_urlsafe(24): 24 bytes, 192 bits, 32 base64url characters (no ".")
MAX_TASK_ID = 256  # longer is refused as invalid params; a tool name is at most 128 characters


def new_task_id(tool: str) -> str:
    return f"{secrets.token_urlsafe(24)}.{tool}"


def task_tool(task_id: object) -> str | None:
    """The tool a task id names; None when the value is no task id this server could have issued."""
    if not isinstance(task_id, str) or len(task_id) > MAX_TASK_ID:
        return None
    random_part, dot, tool = task_id.partition(".")
    if not dot or len(random_part) != _RANDOM_CHARS or not tool:
        return None
    return tool


def task_digest(task_id: str) -> str:
    """What logs, spans and audit records carry instead of the id (which reads a task like a bearer token)."""
    return "sha256:" + hashlib.sha256(task_id.encode()).hexdigest()[:32]
