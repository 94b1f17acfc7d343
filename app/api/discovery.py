"""Route discovery: import every module under ROUTES__DIR and collect its `router`, refusing unguarded routes.

Modules are imported the way tools are (app/core/modules.py): the repository's `routes/` as the `routes` package,
any other folder under a private package name.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.auth.dependencies import Requires, authenticated, public
from app.catalog.injection import mentions_marker
from app.catalog.registry import Requirement
from app.core.modules import modules_under, package_for
from app.core.startup import StartupError

log = logging.getLogger("app.routes")

REPO_ROUTES = Path(__file__).resolve().parents[2] / "routes"


class RouteDiscoveryError(StartupError, RuntimeError):
    """A route module that cannot be served: it does not import, or a route declares no auth."""

    label = "routes error"


@dataclass
class RouteCatalog:
    """The discovered routers and the scopes and roles their guards name (for PRM and the OpenAPI scheme)."""

    routers: list[APIRouter] = field(default_factory=list)
    scopes: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)

    @property
    def requirement(self) -> Requirement:
        """What the routes require, all together: their scopes and roles join the catalog's in PRM and the 401."""
        return Requirement(frozenset(self.scopes), frozenset(self.roles))


def discover_routes(directory: Path) -> RouteCatalog:
    """Every `router` under `directory` (none if the folder does not exist), each route checked for its auth."""
    catalog = RouteCatalog()
    directory = directory.resolve()
    if not directory.is_dir():
        return catalog
    for module_name, path in modules_under(directory, package_for(directory, REPO_ROUTES, "routes")):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise RouteDiscoveryError(f"could not import routes module {path}: {type(exc).__name__}: {exc}") from exc
        router = getattr(module, "router", None)
        if router is None:
            continue  # a helper module
        if not isinstance(router, APIRouter):
            raise RouteDiscoveryError(f"{path}: `router` is a {type(router).__name__}, not a fastapi.APIRouter")
        for route in router.routes:
            _check(route, path, catalog)
        catalog.routers.append(router)
    return catalog


def _check(route: object, path: Path, catalog: RouteCatalog) -> None:
    """Default-deny: every route authenticates (`Caller`, `requires`) or is declared public; nothing else serves."""
    if not isinstance(route, APIRoute):
        raise RouteDiscoveryError(
            f"{path}: {type(route).__name__} {getattr(route, 'path', '?')!r} is not an API route; only "
            "@router.get/post/... routes (APIRoute) are served, each with its auth declared"
        )
    name = f"{','.join(sorted(route.methods or ()))} {route.path} ({path.name}:{route.name})"
    _refuse_tool_markers(route, name)
    _warn_wrapped(route, name)
    for call, scopes in _calls(route.dependant):
        if isinstance(call, Requires):
            catalog.scopes.update(scopes)
            catalog.roles.update(call.roles)
    if is_guarded(route):
        return
    calls = list(_calls(route.dependant))
    if any(call is public for call, _ in calls):
        log.warning("route %s is public: anyone may call it, without a token", name)
        return
    raise RouteDiscoveryError(
        f"route {name} declares no auth: add dependencies=[requires(scopes=[...])] or dependencies=[authenticated] "
        "(or a `caller: Caller` parameter), or dependencies=[public] to serve it to anyone without a token"
    )


def _refuse_tool_markers(route: APIRoute, name: str) -> None:
    """`Secret(...)` and `Downstream(...)` are filled in for tools only: in a route, FastAPI would read such a
    parameter from the request, so the caller could set what the author took for a secret or a token."""
    try:
        signature = inspect.signature(route.endpoint, eval_str=True)
    except Exception:  # FastAPI has resolved the annotations already; nothing more to learn here
        return
    for param in signature.parameters.values():
        if mentions_marker(param.annotation):
            raise RouteDiscoveryError(
                f"route {name}: parameter {param.name!r} is marked Secret(...) or Downstream(...), which only tools, "
                "resources and prompts fill in; a route would read it from the request. In a route, call secret(...) "
                "or downstream_token(...) in its body"
            )


def _warn_wrapped(route: APIRoute, name: str) -> None:
    """`Depends(public)` / `Depends(authenticated)` in `dependencies=[...]`: the older spelling of the bare guard."""
    for dependency in route.dependencies:
        wrapped = dependency.dependency
        if type(dependency) is params.Depends and (wrapped is public or wrapped is authenticated):
            bare = "public" if wrapped is public else "authenticated"
            warnings.warn(
                f"route {name}: dependencies=[Depends({bare})] is spelt dependencies=[{bare}] now (as "
                "requires(...) is); the wrapped spelling is deprecated",
                DeprecationWarning,
                stacklevel=1,
            )


def is_guarded(route: APIRoute) -> bool:
    """Whether the route authenticates its caller (`Caller`, `requires`, or `authenticated` itself)."""
    return any(call is authenticated for call, _ in _calls(route.dependant))


def _calls(dependant: Dependant) -> Iterator[tuple[object, list[str]]]:
    """Every dependency callable in the tree, with the security scopes it was declared with."""
    for sub in dependant.dependencies:
        yield sub.call, list(sub.own_oauth_scopes or [])
        yield from _calls(sub)
