"""The tools.lock check: the lock matches what a server built on its tools folder serves (the comparison
`secure-mcp-server tools-lock --check` and startup make)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.catalog.registry import ToolDiscoveryError
from app.core.findings import Finding, error, ok
from app.server.toolslock import HINT, differences, read

SHOWN = 5  # differences listed; the rest are counted


def lock_findings(
    lock_path: Path, current: Callable[[], dict[str, Any]], command: str = "make tools-lock"
) -> list[Finding]:
    """`tools-lock`: `current()` is what the server would serve (it imports the tools, so it may fail)."""
    try:
        served = current()
    except ToolDiscoveryError as exc:
        return [error("tools-lock", f"the tools cannot be loaded: {exc}", "fix the tool the message names")]
    try:
        found = differences(read(lock_path), served)
    except ToolDiscoveryError as exc:  # ToolLockError: the lock is not valid JSON
        return [error("tools-lock", str(exc), f"regenerate it: {command}")]
    if not found:
        return [ok("tools-lock", f"{lock_path} matches the served tools")]
    listed = "; ".join(found[:SHOWN]) + (f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else "")
    fix = (
        HINT if command == "make tools-lock" else f"review the change, then run `{command}` and commit {lock_path.name}"
    )
    return [error("tools-lock", f"{lock_path} differs from the served tools: {listed}", fix)]
