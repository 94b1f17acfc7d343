"""The tool author's decorators (`@tool`, `@resource`, `@prompt`, `@completion`) and what they record: a `Spec` per
function, and the `Catalog` of them that discovery (discovery.py) collects under a tools directory."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from mcp.types import ToolAnnotations

from app.core.startup import StartupError

F = TypeVar("F", bound=Callable[..., Any])
Kind = Literal["tool", "resource", "prompt", "completion"]
SPEC_ATTR = "__mcp_spec__"
# completion/complete: `ref.type` -> (the catalog kind it targets, the ref field naming the target). Authorization and
# dispatch both read a ref through this one table, so a completer runs only for the target that was authorized.
COMPLETION_REFS: dict[str, tuple[Kind, str]] = {"ref/prompt": ("prompt", "name"), "ref/resource": ("resource", "uri")}


class ToolDiscoveryError(StartupError, RuntimeError):
    """A tools module is broken or a declaration is unsafe; startup stops with this message."""

    label = "tools error"


@dataclass(frozen=True)
class Requirement:
    """What a caller needs: all `scopes` (delegated tokens) or all `roles` (app tokens), unless public."""

    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    public: bool = False

    @property
    def declared(self) -> bool:
        return self.public or bool(self.scopes or self.roles)


@dataclass(frozen=True)
class Limits:
    """Per-tool limits from the decorator: `rate` per caller (a `limits` string) and a run-time `timeout` in seconds."""

    rate: str | None = None
    timeout: float | None = None


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


def _decorator(
    kind: Kind,
    name: str | None,
    scopes: Iterable[str],
    roles: Iterable[str],
    public: bool,
    uri: str | None = None,
    secrets: Iterable[str] = (),
    audit_arguments: bool = False,
    limits: Limits | None = None,
    input_schema: dict[str, Any] | None = None,
    **options: Any,
) -> Callable[[F], F]:
    from app.secrets.store import check_tool_secret_name

    requirement = Requirement(frozenset(scopes), frozenset(roles), public)
    if isinstance(scopes, str) or isinstance(roles, str) or isinstance(secrets, str):
        raise TypeError("scopes, roles and secrets are lists of names, e.g. scopes=['files.read']")
    declared = frozenset(check_tool_secret_name(s) for s in secrets)

    def register(fn: F) -> F:
        chosen = {k: v for k, v in options.items() if v is not None}  # the SDK's options only
        spec = Spec(
            kind,
            fn,
            name or fn.__name__,
            requirement,
            chosen,
            uri,
            declared,
            audit_arguments,
            limits or Limits(),
            input_schema,
        )
        setattr(fn, SPEC_ATTR, spec)
        return fn

    return register


def tool(
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    public: bool = False,
    secrets: Iterable[str] = (),
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    annotations: ToolAnnotations | None = None,
    structured_output: bool | None = None,
    audit_arguments: bool = False,
    rate: str | None = None,
    timeout: float | None = None,
    input_schema: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP tool. Declare the delegated `scopes` and/or app `roles` it needs;
    `public=True` is the explicit, logged opt-out. `secrets` names the tool's own secrets (read with `secret()`).
    `audit_arguments=True` puts the raw arguments in the audit log (default: only their sha256), so opt in only
    for arguments that are safe to keep. `rate="10/minute"` limits each caller; `timeout` is in seconds.
    `input_schema` publishes a hand-written JSON Schema 2020-12 instead of one derived from the signature; every call
    is validated against it, and the function takes its top-level properties as keyword arguments (plain JSON
    values). See docs/tools.md."""
    return _decorator(
        "tool",
        name,
        scopes,
        roles,
        public,
        secrets=secrets,
        audit_arguments=audit_arguments,
        limits=Limits(rate, timeout),
        input_schema=input_schema,
        title=title,
        description=description,
        annotations=annotations,
        structured_output=structured_output,
    )


def resource(
    uri: str,
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    public: bool = False,
    secrets: Iterable[str] = (),
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP resource (or resource template, when `uri` has `{params}`)."""
    return _decorator(
        "resource",
        name,
        scopes,
        roles,
        public,
        uri=uri,
        secrets=secrets,
        title=title,
        description=description,
        mime_type=mime_type,
    )


def prompt(
    *,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    public: bool = False,
    secrets: Iterable[str] = (),
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP prompt."""
    return _decorator("prompt", name, scopes, roles, public, secrets=secrets, title=title, description=description)


def completion(target: str) -> Callable[[F], F]:
    """Suggest values for one prompt's (by name) or resource template's (by URI template) arguments.

    The function takes `(argument, value, context)` (context: arguments already chosen) and returns a list of
    strings. It needs no scopes of its own: a caller may complete what it may use.
    """
    return _decorator("completion", target, (), (), True)


@dataclass
class Catalog:
    """Everything discovered under a tools directory."""

    specs: list[Spec] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Spec]:
        return [spec for spec in self.specs if spec.kind == kind]

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
