"""The one core build: HTTP, stdio and the lock command serve the same catalog behind the same guards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from app.auth.principal import Principal
from app.auth.resource import NO_ROUTES
from app.compose.core import Core, build_core
from app.local.serve import build_local
from app.main import create_app
from app.server.toolslock import served_sync
from app.settings import Settings
from tests.support.values import CLIENT_ID, TENANT, TEST_TOOLS

# Every layer of the SDK middleware HTTP serves; stdio adds the caller binding and authorization inside the SDK,
# since it has no HTTP layer to authorize before dispatch.
HTTP_MIDDLEWARE = ["ObserveOperation", "SecretGuard", "CallerContext", "ToolBounds", "AskClient"]
STDIO_MIDDLEWARE = ["BindCaller", "ObserveOperation", "AuthorizeCalls", "SecretGuard", "CallerContext", "ToolBounds",
                    "AskClient"]  # fmt: skip


def _settings(data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        app_env="development",  # with the Entra app set, so no dev issuer is started
        azuread={"tenant_id": TENANT, "client_id": CLIENT_ID},
        tools={"dir": TEST_TOOLS, "lock_mode": "off"},
        stdio={"data_dir": data_dir, "allow_plain_cache": True},
    )


def _principal(sub: str, scopes: set[str] = frozenset(), roles: set[str] = frozenset()) -> Principal:  # type: ignore[assignment]
    return Principal(TENANT, sub, sub, CLIENT_ID, frozenset(scopes), frozenset(roles), "iss", "2.0", sub)


def _middleware(core: Core) -> list[str]:
    """Ours (the SDK's own layers, such as its requestState boundary, come with every `MCPServer`)."""
    layers = core.mcp._lowlevel_server.middleware
    return [type(layer).__name__ for layer in layers if type(layer).__module__.startswith("app.")]


def _decisions(core: Core, principals: list[Principal]) -> dict[tuple[str, str, str], bool]:
    return {
        (principal.key, spec.kind, spec.uri or spec.name): core.guard.allows(
            principal, spec.kind, spec.uri or spec.name
        )
        for principal in principals
        for spec in core.catalog.specs
    }


def test_http_stdio_and_the_lock_command_serve_one_catalog_behind_one_guard(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    http: Core = create_app(settings).state.cores[0]
    stdio, _identity, _signed_in = build_local(settings)
    review = build_core(settings, for_review=True)
    served: list[dict[str, Any]] = [served_sync(core.mcp, core.catalog) for core in (http, stdio, review)]
    assert served[0]["tools"] and served[0] == served[1] == served[2]
    principals = [
        _principal("reader", scopes={"mcp.read"}),
        _principal("writer", scopes={"mcp.read", "files.write"}),
        _principal("job", roles={"Jobs.Run"}),
    ]
    decisions = [_decisions(core, principals) for core in (http, stdio, review)]
    assert decisions[0] == decisions[1] == decisions[2]
    assert set(decisions[0].values()) == {True, False}  # the principals tell the guards apart
    assert _middleware(http) == _middleware(review) == HTTP_MIDDLEWARE
    assert _middleware(stdio) == STDIO_MIDDLEWARE
    # One resource server (identifier, audiences, authority, scopes); HTTP's also declares its routes' scopes.
    assert http.server.routes.scopes and stdio.server.routes == review.server.routes == NO_ROUTES
    same = [replace(core.server, routes=NO_ROUTES, catalog=review.catalog) for core in (http, stdio, review)]
    assert same[0] == same[1] == same[2]
