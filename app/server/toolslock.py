"""Tool integrity: `tools.lock` pins what models are shown (descriptions, schemas) and what callers need.

A changed description or schema can steer a model ("tool poisoning"), so such changes must arrive as a reviewed
diff of `tools.lock`, never silently. Startup compares what it serves with the file (`enforce`);
`python -m app.toolkit.toolslock write` (`make tools-lock`) regenerates the file, and `check` compares without
starting a server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from app.catalog.registry import Catalog, Spec, ToolDiscoveryError

log = logging.getLogger("app.toolslock")

LOCK_VERSION = 1
# lock section -> catalog kind; resources and prompts are shown to models too, so they are pinned as well
SECTIONS = {"tools": "tool", "resources": "resource", "resource_templates": "resource", "prompts": "prompt"}
HINT = "review the change, then run `make tools-lock` and commit tools.lock"


class ToolLockError(ToolDiscoveryError):
    """Served tool metadata differs from `tools.lock` (or the lock is missing) and the lock is enforced."""


async def served(mcp: MCPServer[Any], catalog: Catalog) -> dict[str, Any]:
    """Exactly what `*/list` serves (as the SDK renders it), plus what each entry declares callers need: scopes,
    roles, and where set its authentication context and agent policy."""
    specs: dict[tuple[str, str], Spec] = {(spec.kind, spec.uri or spec.name): spec for spec in catalog.specs}
    listed: dict[str, tuple[list[Any], str]] = {
        "tools": (await mcp.list_tools(), "name"),
        "resources": (await mcp.list_resources(), "uri"),
        "resource_templates": (await mcp.list_resource_templates(), "uriTemplate"),
        "prompts": (await mcp.list_prompts(), "name"),
    }
    lock: dict[str, Any] = {"version": LOCK_VERSION}
    for section, (items, key) in listed.items():
        entries = []
        for item in items:
            wire = item.model_dump(mode="json", by_alias=True, exclude_none=True)
            spec = specs.get((SECTIONS[section], str(wire[key])))
            entries.append(_entry(wire, spec))
        lock[section] = sorted(entries, key=lambda entry: str(entry.get(key)))
    return lock


def served_sync(mcp: MCPServer[Any], catalog: Catalog) -> dict[str, Any]:
    """`served` from synchronous startup code, whether or not an event loop is already running in this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, served(mcp, catalog)).result()


def _entry(wire: dict[str, Any], spec: Spec | None) -> dict[str, Any]:
    requirement = spec.requirement if spec else None
    entry = {
        **wire,
        "scopes": sorted(requirement.scopes) if requirement else [],
        "roles": sorted(requirement.roles) if requirement else [],
        "public": bool(requirement and requirement.public),
    }
    # Declared only where set, so the entries of tools that declare neither keep their hashes.
    if requirement and requirement.auth_context:
        entry["auth_context"] = requirement.auth_context
    if requirement and requirement.agents:
        entry["agents"] = requirement.agents
    entry["sha256"] = hashlib.sha256(_canonical(entry).encode()).hexdigest()
    return entry


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def render(lock: dict[str, Any]) -> str:
    """Stable text for the committed file: sorted keys, one field per line, so diffs are reviewable."""
    return json.dumps(lock, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def read(path: Path) -> dict[str, Any] | None:
    """The committed lock, or None when there is no file."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ToolLockError(f"{path} is not valid JSON ({exc}); {HINT}") from None
    if not isinstance(data, dict):
        raise ToolLockError(f"{path} is not a tools.lock file; {HINT}")
    return data


# fields compared one by one, so the message says *what* changed, not just that the hash did
_FIELDS = {
    "description": "description",
    "title": "title",
    "inputSchema": "input schema",
    "outputSchema": "output schema",
    "annotations": "annotations",
    "scopes": "scopes",
    "roles": "roles",
    "public": "public flag",
    "auth_context": "authentication context",
    "agents": "agent policy",
    "mimeType": "mime type",
    "arguments": "arguments",
    "name": "name",
}


def differences(locked: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Human-readable differences, one per changed entry, each naming the entry and what changed."""
    if locked is None:
        return ["there is no tools.lock"]
    found: list[str] = []
    for section, kind in SECTIONS.items():
        key = "uri" if section == "resources" else "uriTemplate" if section == "resource_templates" else "name"
        old = {str(e.get(key)): e for e in locked.get(section, []) if isinstance(e, dict)}
        new = {str(e.get(key)): e for e in current.get(section, [])}
        for ident in sorted(old.keys() - new.keys()):
            found.append(f"{kind} {ident!r} is in tools.lock but no longer served")
        for ident in sorted(new.keys() - old.keys()):
            found.append(f"{kind} {ident!r} is served but not in tools.lock")
        for ident in sorted(old.keys() & new.keys()):
            before, after = old[ident], new[ident]
            if before.get("sha256") == after["sha256"] and _strip(before) == _strip(after):
                continue
            changed = [label for field, label in _FIELDS.items() if before.get(field) != after.get(field)]
            other = sorted((before.keys() | after.keys()) - _FIELDS.keys() - {"sha256", key})
            changed += [f for f in other if before.get(f) != after.get(f)]
            found.append(f"{kind} {ident!r}: {', '.join(changed) or 'hash'} changed")
    return found


def _strip(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "sha256"}


def enforce(mode: str, lock_path: Path, current: dict[str, Any], hint: str = HINT) -> list[str]:
    """Compare at startup: raise in `enforce` mode, log in `warn` mode. Returns the differences found."""
    if mode == "off":
        return []
    found = differences(read(lock_path), current)
    if not found:
        return []
    message = f"served tool metadata differs from {lock_path}: " + "; ".join(found) + f". {hint}"
    if mode == "enforce":
        raise ToolLockError(message + " (or set TOOLS__LOCK_MODE=warn to start anyway)")
    log.warning("%s", message)
    return found
