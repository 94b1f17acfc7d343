"""Injected parameters: what a tool's signature asks the framework to fill in, instead of the caller.

`api_key: Annotated[str, Secret("weather--api-key")]` receives the tool secret, `token: Annotated[str,
Downstream(scopes=[...])]` an on-behalf-of token, and a parameter typed as the caller type (`Principal`, bare or in
`Annotated[...]`) the current caller. The catalog reads these declarations (the secrets must be known before
startup loads them); the server fills them in at call time. The caller type lives in a higher layer, so it is
passed in (`caller=`) rather than imported here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import SecretStr

from app.secrets.store import check_tool_secret_name


@dataclass(frozen=True)
class Secret:
    """Marks a tool, resource or prompt parameter that receives a tool secret's current value.

    Declaring it declares the secret (startup loads it, and stops when it is missing); the parameter is filled in
    by the framework and is not an argument. Typed `str` (the text) or `SecretStr`. Outside a signature, `secret()`.

    Args:
        name: the secret's name, `<tool>--<name>` (lowercase letters, digits, dashes), e.g. `"weather--api-key"`.

    Example:
        @tool(scopes=["weather.read"])
        async def forecast(city: str, api_key: Annotated[str, Secret("weather--api-key")]) -> str: ...
    """

    name: str


@dataclass(frozen=True, init=False)
class Downstream:
    """Marks a tool, resource or prompt parameter that receives an access token for a downstream API, as the user.

    Obtained at call time (OAuth on-behalf-of); it fails as `downstream_token()` does, as a tool error. The
    parameter is typed `str` and is not an argument. For scopes known only at call time, `downstream_token()`.

    Args:
        scopes: the downstream API's scopes (at least one), e.g. `["https://graph.microsoft.com/User.Read"]`.

    Example:
        @tool(scopes=["profile.read"])
        async def me(token: Annotated[str, Downstream(scopes=["https://graph.microsoft.com/User.Read"])]) -> str: ...
    """

    scopes: tuple[str, ...]

    def __init__(self, scopes: Iterable[str]) -> None:
        if isinstance(scopes, str):
            raise TypeError(
                "Downstream(scopes=[...]) takes a list of scopes, e.g. ['https://graph.microsoft.com/.default']"
            )
        object.__setattr__(self, "scopes", tuple(scopes))


Marker = Secret | Downstream
_MARKERS = (Secret, Downstream)
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class Injected:
    """One parameter the framework fills: from `source` (a marker, or the caller type) as a value of type `base`."""

    source: Marker | type
    base: Any


@dataclass(frozen=True)
class Plan:
    """A function's injected parameters, and its signature without them: what the SDK and the caller see."""

    injected: dict[str, Injected]
    visible: inspect.Signature

    @property
    def annotations(self) -> dict[str, Any]:
        """The visible parameters' (evaluated) annotations, as `__annotations__` holds them."""
        found = {p.name: p.annotation for p in self.visible.parameters.values() if p.annotation is not p.empty}
        if self.visible.return_annotation is not inspect.Signature.empty:
            found["return"] = self.visible.return_annotation
        return found


def plan(fn: Callable[..., Any], caller: type | None = None) -> Plan | None:
    """The parameters of `fn` the framework fills in, or None when there are none.

    Raises ValueError (naming the parameter) for a declaration that cannot be honoured: an injected parameter that
    has a default, is positional-only, carries two sources, has the wrong type, or hides a marker or the caller
    type inside another type (where the SDK would publish it as an argument the caller could fill).
    """
    try:
        signature = inspect.signature(fn, eval_str=True)
    except Exception:
        # Unresolvable annotations: the SDK refuses such a tool or prompt itself; a static resource has no
        # parameters to inject, so there is nothing to find here either way.
        return None
    injected: dict[str, Injected] = {}
    for param in signature.parameters.values():
        found = _injected(param, caller)
        if found is not None:
            injected[param.name] = found
    if not injected:
        return None
    visible = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in injected])
    return Plan(injected, visible)


def declared_secrets(fn: Callable[..., Any]) -> frozenset[str]:
    """The tool secrets `fn`'s parameters declare with `Secret(...)` (validated like `@tool(secrets=...)`)."""
    found = plan(fn)
    if found is None:
        return frozenset()
    return frozenset(i.source.name for i in found.injected.values() if isinstance(i.source, Secret))


def _injected(param: inspect.Parameter, caller: type | None) -> Injected | None:
    annotation = param.annotation
    base, metadata = (
        (get_args(annotation)[0], annotation.__metadata__) if get_origin(annotation) is Annotated else (annotation, ())
    )
    markers = [m for m in metadata if isinstance(m, _MARKERS)]
    sources: list[Marker | type] = [*markers, *([caller] if caller is not None and base is caller else [])]
    if not sources:
        if _mentions(annotation, caller):
            raise ValueError(
                f"parameter {param.name!r} wraps an injected type in another type ({annotation!r}); annotate it "
                "directly, e.g. `caller: Principal` or `api_key: Annotated[str, Secret('tool--name')]`"
            )
        return None
    if len(sources) > 1:
        raise ValueError(f"parameter {param.name!r} asks for {len(sources)} injected values; give it one")
    if param.default is not param.empty:
        raise ValueError(f"injected parameter {param.name!r} has a default; drop it (the framework always fills it)")
    if param.kind not in _KEYWORD_KINDS:
        raise ValueError(f"injected parameter {param.name!r} must be a plain or keyword-only parameter")
    source = sources[0]
    if isinstance(source, Secret):
        if base not in (str, SecretStr):
            raise ValueError(f"parameter {param.name!r} is marked Secret(...) but typed {base!r}; use str or SecretStr")
        check_tool_secret_name(source.name)
    elif isinstance(source, Downstream):
        if base is not str:
            raise ValueError(f"parameter {param.name!r} is marked Downstream(...) but typed {base!r}; use str")
        if not source.scopes or not all(isinstance(s, str) and s for s in source.scopes):
            raise ValueError(f"parameter {param.name!r}: Downstream(scopes=[...]) needs at least one scope")
    return Injected(source, base)


def mentions_marker(annotation: Any) -> bool:
    """Whether a `Secret(...)` or `Downstream(...)` marker sits anywhere in `annotation`."""
    return _mentions(annotation, None)


def _mentions(annotation: Any, caller: type | None) -> bool:
    """Whether an injection marker or the caller type sits anywhere inside `annotation` (a union, a list, ...)."""
    if caller is not None and annotation is caller:
        return True
    if get_origin(annotation) is Annotated and any(isinstance(m, _MARKERS) for m in annotation.__metadata__):
        return True
    return any(_mentions(arg, caller) for arg in get_args(annotation))
