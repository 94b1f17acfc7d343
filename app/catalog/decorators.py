"""The tool author's decorators: `@tool`, `@resource`, `@prompt` and `@completion`. Each records a `Spec` on the
function (registry.py); discovery (discovery.py) collects them into the `Catalog`. IDE hover is where authors read
these docstrings, so each has every argument and an example."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from mcp.types import ToolAnnotations

from app.catalog.registry import (
    SPEC_ATTR,
    AgentPolicy,
    Kind,
    Limits,
    Requirement,
    Spec,
    TaskMode,
    check_agents,
    check_auth_context,
)

F = TypeVar("F", bound=Callable[..., Any])


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
    auth_context: str | None = None,
    agents: AgentPolicy | None = None,
    **options: Any,
) -> Callable[[F], F]:
    from app.secrets.store import check_tool_secret_name

    if isinstance(scopes, str) or isinstance(roles, str) or isinstance(secrets, str):
        raise TypeError("scopes, roles and secrets are lists of names, e.g. scopes=['files.read']")
    requirement = Requirement(
        frozenset(scopes), frozenset(roles), public, check_auth_context(auth_context), check_agents(agents)
    )
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


def _warn_secrets(kind: str, secrets: Iterable[str]) -> None:
    """`secrets=[...]` is the older spelling of a `Secret(...)` parameter: it still declares them, with a warning."""
    if secrets:
        warnings.warn(
            f"@{kind}(secrets=[...]) is deprecated: declare each secret as a parameter, "
            "`api_key: Annotated[str, Secret('tool--api-key')]` (or read it with secret() where no signature can)",
            DeprecationWarning,
            stacklevel=3,
        )


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
    task: TaskMode = "forbidden",
    auth_context: str | None = None,
    agents: AgentPolicy | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP tool, guarded by the scopes and/or roles it declares (see docs/tools.md).

    The function's docstring is the description models read; its typed parameters are the tool's arguments.
    Parameters typed `Caller`, `Annotated[str, Secret(...)]` or `Annotated[str, Downstream(...)]` are filled in by
    the framework (the caller, a tool secret, an on-behalf-of token) and are not arguments.

    Args:
        scopes: delegated scopes a user token must all hold, e.g. `["weather.read"]`.
        roles: app roles an app-only token must all hold, e.g. `["weather.read.all"]`.
        public: True serves the tool to any authenticated caller without scopes or roles (logged at startup).
            A tool that declares none of `scopes`, `roles`, `public` stops startup.
        secrets: deprecated (DeprecationWarning): declare secrets as `Annotated[str, Secret("tool--name")]`
            parameters. Names the tool's own secrets, loaded at startup.
        name: the tool's name (default: the function's name).
        title: a human-readable title, for clients' UIs.
        description: what models read (default: the function's docstring).
        annotations: the SDK's `ToolAnnotations` hints (read-only, destructive, idempotent, open-world).
        structured_output: whether to publish an output schema (default: the SDK decides from the return type).
        audit_arguments: True writes the raw arguments to the audit log; by default only their SHA-256 is kept.
        rate: a per-caller rate limit for this tool on top of the server-wide one, e.g. `"10/minute"`
            (HTTP only: see docs/tools.md#per-tool-limits).
        timeout: seconds the tool may run before it is cancelled (default `SECURITY__TOOL_TIMEOUT_SECONDS`).
        input_schema: a hand-written JSON Schema 2020-12 published instead of the signature's; every call is
            validated against it and the function takes its top-level properties as plain JSON keyword arguments.
        task: `"optional"` lets a call run as a task (MCP Tasks extension) when the client declares the extension:
            the client gets a task handle at once and polls for the result; `"required"` runs every call as one
            (clients that do not declare it get an error); `"forbidden"` (default) never. See docs/tasks.md.
        auth_context: an Entra Conditional Access authentication context id (`"c1"` .. `"c99"`): the token's `acrs`
            must hold it, else the call gets 401 with Entra's claims challenge (the tool stays listed). See
            docs/authorization.md#authentication-context.
        agents: Entra Agent ID callers: `"allow"`, `"deny"`, or `"delegated-only"` (only agents acting for a
            signed-in user); default `MCP__AGENTS`. See docs/authorization.md#agent-identities.

    Returns:
        The decorator; it returns the function unchanged (with its `Spec` attached).

    Example:
        @tool(scopes=["weather.read"], rate="10/minute", timeout=5)
        async def forecast(
            city: Annotated[str, Field(min_length=1, max_length=80)],
            caller: Caller,
            api_key: Annotated[str, Secret("weather--api-key")],
        ) -> str:
            \"\"\"Tomorrow's forecast for a city.\"\"\"
            ...
    """
    _warn_secrets("tool", secrets)
    return _decorator(
        "tool",
        name,
        scopes,
        roles,
        public,
        secrets=secrets,
        audit_arguments=audit_arguments,
        limits=Limits(rate, timeout, task),
        input_schema=input_schema,
        auth_context=auth_context,
        agents=agents,
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
    auth_context: str | None = None,
    agents: AgentPolicy | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP resource, or a resource template when `uri` has `{params}`.

    Guarded like a tool; it takes the same injected parameters (`Caller`, `Secret(...)`, `Downstream(...)`).

    Args:
        uri: the resource's URI (`notes://recent`), or a template whose `{params}` are the function's parameters
            (`notes://by-title/{title}`).
        scopes: delegated scopes a user token must all hold to read it.
        roles: app roles an app-only token must all hold to read it.
        public: True serves it to any authenticated caller (logged at startup).
        secrets: deprecated (DeprecationWarning): declare secrets as `Annotated[str, Secret("tool--name")]`
            parameters.
        name: the resource's name (default: the function's name).
        title: a human-readable title.
        description: what clients show (default: the function's docstring).
        mime_type: the content's MIME type, e.g. `"application/json"`.
        auth_context: the authentication context (`"c1"` .. `"c99"`) the token's `acrs` must hold, as for a tool.
        agents: the policy for Entra Agent ID callers, as for a tool (default `MCP__AGENTS`).

    Returns:
        The decorator; it returns the function unchanged.

    Example:
        @resource("notes://recent", scopes=["notes.read"], mime_type="application/json")
        def recent_notes(caller: Caller) -> str:
            \"\"\"The caller's five most recent notes, as JSON.\"\"\"
            ...
    """
    _warn_secrets("resource", secrets)
    return _decorator(
        "resource",
        name,
        scopes,
        roles,
        public,
        uri=uri,
        secrets=secrets,
        auth_context=auth_context,
        agents=agents,
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
    auth_context: str | None = None,
    agents: AgentPolicy | None = None,
) -> Callable[[F], F]:
    """Expose a function as an MCP prompt: its parameters are the prompt's arguments, its return value the messages.

    Guarded like a tool; it takes the same injected parameters (`Caller`, `Secret(...)`, `Downstream(...)`).

    Args:
        scopes: delegated scopes a user token must all hold to use it.
        roles: app roles an app-only token must all hold to use it.
        public: True serves it to any authenticated caller (logged at startup).
        secrets: deprecated (DeprecationWarning): declare secrets as `Annotated[str, Secret("tool--name")]`
            parameters.
        name: the prompt's name (default: the function's name).
        title: a human-readable title.
        description: what clients show (default: the function's docstring).
        auth_context: the authentication context (`"c1"` .. `"c99"`) the token's `acrs` must hold, as for a tool.
        agents: the policy for Entra Agent ID callers, as for a tool (default `MCP__AGENTS`).

    Returns:
        The decorator; it returns the function unchanged.

    Example:
        @prompt(scopes=["notes.read"])
        def summarize_notes(topic: str) -> str:
            \"\"\"Ask the model to summarise the caller's notes about a topic.\"\"\"
            return f"Summarise my notes about {topic!r} in five bullet points."
    """
    _warn_secrets("prompt", secrets)
    return _decorator(
        "prompt",
        name,
        scopes,
        roles,
        public,
        secrets=secrets,
        auth_context=auth_context,
        agents=agents,
        title=title,
        description=description,
    )


def completion(target: str) -> Callable[[F], F]:
    """Suggest values for the arguments of one prompt (by name) or resource template (by URI template).

    The function takes `(argument, value, context)`: the argument's name, what the user typed so far, and the
    arguments already chosen; it returns a list of suggestions. It needs no scopes of its own: a caller may complete
    what it may use. Its signature is fixed, so the caller is `current_principal()` there.

    Args:
        target: the prompt's name, or the resource template's URI template, whose arguments it completes.

    Returns:
        The decorator; it returns the function unchanged.

    Example:
        @completion("summarize_notes")
        def complete_topic(argument: str, value: str, context: dict[str, str]) -> list[str]:
            return [t for t in ("kafka", "kubernetes") if t.startswith(value)]
    """
    return _decorator("completion", target, (), (), True)
