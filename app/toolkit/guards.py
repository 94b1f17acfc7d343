"""Which callers each tool must refuse (401 without a token, 403 without one of its grants): the kit's guard tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.catalog.discovery import discover
from app.catalog.registry import Spec
from app.settings import ToolsSettings


def default_tools_dir() -> Path:
    """`TOOLS__DIR` if set, else the repo's `tools/` (what the server itself would discover)."""
    return Path(os.environ["TOOLS__DIR"]) if os.environ.get("TOOLS__DIR") else ToolsSettings().dir


@dataclass(frozen=True)
class Denial:
    """A caller a tool must refuse: `kind` user or app (or none: no token), with these scopes or roles."""

    tool: str
    kind: str
    grants: tuple[str, ...]
    expect: int

    @property
    def id(self) -> str:
        return f"{self.tool}-{self.kind}-[{' '.join(self.grants)}]"


def denials(spec: Spec) -> list[Denial]:
    """Callers `spec` must refuse: no token (401); every caller missing one declared scope or role (403)."""
    req, name = spec.requirement, spec.name
    found = [Denial(name, "none", (), 401)]
    if req.public:
        return found
    scopes, roles = sorted(req.scopes), sorted(req.roles)
    if scopes:
        found += [Denial(name, "user", tuple(s for s in scopes if s != missing), 403) for missing in scopes]
    else:
        found.append(Denial(name, "user", tuple(roles), 403))  # a user holding the role names as scopes
    if roles:
        found += [Denial(name, "app", tuple(r for r in roles if r != missing), 403) for missing in roles]
    else:
        found.append(Denial(name, "app", tuple(scopes), 403))  # an app holding the scope names as roles
    return found


def discovered_tools(tools_dir: Path | None = None) -> list[Spec]:
    return discover(tools_dir or default_tools_dir()).of("tool")
