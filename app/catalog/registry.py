"""What the tool author's decorators (decorators.py: `@tool`, `@resource`, `@prompt`, `@completion`) record: a `Spec`
per function, the `Catalog` of them that discovery (discovery.py) collects under a tools directory, and each tool's
`Policy`, the one lookup every enforcement point reads its per-tool limits from."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

from app.core.startup import StartupError

Kind = Literal["tool", "resource", "prompt", "completion"]
TaskMode = Literal["forbidden", "optional", "required"]  # may a call run as a task (MCP Tasks extension)
# May Entra Agent ID agents use a target: always, never, or only when acting for a signed-in user
AgentPolicy = Literal["allow", "deny", "delegated-only"]
AUTH_CONTEXT = re.compile(r"c[1-9][0-9]?")  # Entra's authentication context ids: c1 .. c99
SPEC_ATTR = "__mcp_spec__"
# completion/complete: `ref.type` -> (the catalog kind it targets, the ref field naming the target). Authorization and
# dispatch both read a ref through this one table, so a completer runs only for the target that was authorized.
COMPLETION_REFS: dict[str, tuple[Kind, str]] = {"ref/prompt": ("prompt", "name"), "ref/resource": ("resource", "uri")}


class ToolDiscoveryError(StartupError, RuntimeError):
    """A tools module is broken or a declaration is unsafe; startup stops with this message."""

    label = "tools error"


@dataclass(frozen=True)
class Requirement:
    """What a caller needs: all `scopes` (delegated tokens) or all `roles` (app tokens), unless public; and, when
    set, the Conditional Access authentication context `auth_context` in the token's `acrs`. `agents` is the
    target's policy for Entra Agent ID callers (None: the server-wide MCP__AGENTS)."""

    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    public: bool = False
    auth_context: str | None = None
    agents: AgentPolicy | None = None

    @property
    def declared(self) -> bool:
        return self.public or bool(self.scopes or self.roles)


def check_auth_context(value: object) -> str | None:
    """`value` if it is an Entra authentication context id (`c1` .. `c99`) or None; TypeError otherwise."""
    if value is None or (isinstance(value, str) and AUTH_CONTEXT.fullmatch(value)):
        return value
    raise TypeError(
        f"auth_context must be an Entra authentication context id, c1 .. c99 (e.g. auth_context='c1'), not {value!r}"
    )


def check_agents(value: object) -> AgentPolicy | None:
    """`value` if it is an agent policy or None; TypeError otherwise."""
    if value is None or value in get_args(AgentPolicy):
        return value  # type: ignore[return-value]  # narrowed by the membership test
    raise TypeError(f"agents must be one of {', '.join(map(repr, get_args(AgentPolicy)))}, not {value!r}")


@dataclass(frozen=True)
class Limits:
    """Per-tool limits from the decorator: `rate` per caller (a `limits` string) and a run-time `timeout` in seconds."""

    rate: str | None = None
    timeout: float | None = None
    task: TaskMode = "forbidden"

    def __post_init__(self) -> None:
        if self.task not in get_args(TaskMode):
            raise TypeError(f"task must be one of {', '.join(get_args(TaskMode))}, not {self.task!r}")


@dataclass(frozen=True)
class Policy:
    """The limits one tool's calls run under, declared (`@tool(rate=..., timeout=...)`) or server-wide, defaults
    filled in: `Catalog.policy(name)`. In-flight caps are per caller and per process, not per tool (docs/limits.md).

    `STDIO` and `HTTP_ONLY` say where each field is enforced: `python -m app stdio` builds the same MCP server, so
    what runs inside it (ToolBounds) holds there too; the rate limit is HTTP middleware, before the MCP server.
    """

    rate: str | None  # per caller, on top of RATE_LIMIT__DEFAULT (a `limits` string); None: only that
    timeout: float  # seconds; `@tool(timeout=...)`, else SECURITY__TOOL_TIMEOUT_SECONDS
    max_result_bytes: int  # SECURITY__MAX_RESULT_BYTES (server-wide)
    task: TaskMode = "forbidden"  # `@tool(task=...)`: whether a call may (or must) run as a task (docs/tasks.md)

    # SECURITY__TOOL_TIMEOUT_SECONDS and SECURITY__MAX_RESULT_BYTES as shipped (a test pins them to the settings').
    SERVER_DEFAULTS: ClassVar[Policy]
    STDIO: ClassVar[frozenset[str]] = frozenset({"timeout", "max_result_bytes", "task"})
    HTTP_ONLY: ClassVar[frozenset[str]] = frozenset({"rate"})


Policy.SERVER_DEFAULTS = Policy(rate=None, timeout=30.0, max_result_bytes=1024 * 1024)


@dataclass(frozen=True)
class Spec:
    """One decorated function and how it is exposed."""

    kind: Kind
    fn: Callable[..., Any]
    name: str
    requirement: Requirement
    options: dict[str, Any] = field(default_factory=dict)  # passed to the SDK as-is
    uri: str | None = None
    secrets: frozenset[str] = frozenset()
    audit_arguments: bool = False  # tools only: the audit log keeps the raw arguments, not just their digest
    limits: Limits = field(default_factory=Limits)  # enforced by the framework, never seen by the SDK
    input_schema: dict[str, Any] | None = None  # tools only: a hand-written JSON Schema, published as written

    @property
    def where(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


@dataclass
class Catalog:
    """Everything discovered under a tools directory."""

    specs: list[Spec] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Spec]:
        return [spec for spec in self.specs if spec.kind == kind]

    def policy(self, tool: str, server_wide: Policy | None = None) -> Policy:
        """Every per-tool limit for the tool named `tool`, what it leaves open filled in from `server_wide`
        (SECURITY__TOOL_TIMEOUT_SECONDS, SECURITY__MAX_RESULT_BYTES; None: their defaults). An unknown name gets
        the server-wide values alone.

        The one lookup the enforcement points read: RateLimit (app/edge/ratelimit.py) its `rate`, ToolBounds
        (app/server/tool_bounds.py) its `timeout` and `max_result_bytes`, the task parts (app/tasks/) its `task`.
        """
        server_wide = server_wide or Policy.SERVER_DEFAULTS
        limits = next((s.limits for s in self.specs if s.kind == "tool" and s.name == tool), Limits())
        return Policy(
            rate=limits.rate,
            timeout=limits.timeout or server_wide.timeout,
            max_result_bytes=server_wide.max_result_bytes,
            task=limits.task,
        )

    def completers(self) -> dict[tuple[Kind, str], Callable[..., Any]]:
        """Each completion keyed by what it completes: ("prompt", name) or ("resource", URI template)."""
        prompts = {s.name for s in self.of("prompt")}
        templates = {s.uri for s in self.of("resource")}
        found: dict[tuple[Kind, str], Callable[..., Any]] = {}
        for spec in self.of("completion"):
            if spec.name in prompts:
                found["prompt", spec.name] = spec.fn
            if spec.name in templates:
                found["resource", spec.name] = spec.fn
        return found

    @property
    def secrets(self) -> frozenset[str]:
        """Every tool secret any tool, resource or prompt declared: all are loaded (and required) at startup."""
        return frozenset(name for spec in self.specs for name in spec.secrets)
