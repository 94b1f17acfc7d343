"""What tool and route authors see (`from app import ...`): one spelling per capability, documented where IDEs show
it; the older spellings and renamed names still work, with a DeprecationWarning naming the replacement; and the one
per-tool policy lookup, with which of its limits hold in local (stdio) mode."""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from mcp import Client

import app
from app.api.discovery import discover_routes, is_guarded
from app.auth.principal import Principal
from app.catalog.discovery import discover
from app.catalog.registry import SPEC_ATTR, Catalog, Policy
from app.local.serve import build_local
from app.settings import SecuritySettings
from tests.support.entra import EntraStandIn
from tests.support.servers import free_port
from tests.support.values import TENANT, settings_for

DECORATORS = ("tool", "resource", "prompt", "completion")


# ---- docstrings, where IDE hover shows them -----------------------------------------------------------------
def test_every_public_name_defined_in_app_has_a_docstring() -> None:
    missing = []
    for name in app.__all__:
        obj = getattr(app, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("app."):
            if not (obj.__doc__ or "").strip():
                missing.append(name)
        elif obj.__class__.__module__.startswith("app.") and not (inspect.getdoc(obj) or "").strip():
            missing.append(name)  # an instance (`public`, `authenticated`, `ask`, `limiter`): its class's docstring
    assert missing == []


@pytest.mark.parametrize("name", DECORATORS)
def test_the_decorators_document_every_argument_with_an_example(name: str) -> None:
    fn = getattr(app, name)
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "Returns:" in doc and "Example:" in doc
    args = doc.split("Args:", 1)[1].split("Returns:", 1)[0]
    for parameter in inspect.signature(fn).parameters:
        assert f"    {parameter}:" in f"\n{args}", f"@{name}: {parameter!r} is not under Args:"


@pytest.mark.parametrize("name", ["requires", "current_principal", "downstream_token", "secret", "untrusted"])
def test_the_public_functions_have_an_example(name: str) -> None:
    assert "Example:" in (inspect.getdoc(getattr(app, name)) or "")


# ---- route guards: one spelling ------------------------------------------------------------------------------
def _routes(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "routes_here"
    folder.mkdir()
    (folder / "guarded.py").write_text(textwrap.dedent(body))
    return folder


def test_the_three_guards_go_bare_into_dependencies(tmp_path: Path) -> None:
    folder = _routes(
        tmp_path,
        """
        from fastapi import APIRouter

        from app import Caller, authenticated, public, requires

        router = APIRouter()

        @router.get("/open", dependencies=[public])
        async def open_() -> str:
            return "ok"

        @router.get("/any", dependencies=[authenticated])
        async def any_() -> str:
            return "ok"

        @router.get("/scoped", dependencies=[requires(scopes=["reports.read"])])
        async def scoped(caller: Caller) -> str:
            return caller.key
        """,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the one spelling raises no deprecation
        catalog = discover_routes(folder)
    routes = {r.path: r for r in catalog.routers[0].routes if isinstance(r, APIRoute)}
    assert [is_guarded(routes[p]) for p in ("/open", "/any", "/scoped")] == [False, True, True]
    assert catalog.scopes == {"reports.read"}


def test_the_wrapped_guards_still_work_and_warn(tmp_path: Path) -> None:
    folder = _routes(
        tmp_path,
        """
        from fastapi import APIRouter, Depends

        from app import authenticated, public

        router = APIRouter()

        @router.get("/open", dependencies=[Depends(public)])
        async def open_() -> str:
            return "ok"

        @router.get("/any", dependencies=[Depends(authenticated)])
        async def any_() -> str:
            return "ok"
        """,
    )
    with pytest.warns(DeprecationWarning, match="the wrapped spelling is deprecated") as caught:
        catalog = discover_routes(folder)
    messages = [str(w.message) for w in caught]
    assert any("dependencies=[public]" in m and "/open" in m for m in messages)
    assert any("dependencies=[authenticated]" in m and "/any" in m for m in messages)
    routes = {r.path: r for r in catalog.routers[0].routes if isinstance(r, APIRoute)}
    assert is_guarded(routes["/any"]) and not is_guarded(routes["/open"])


def test_bare_and_wrapped_public_serve_the_same() -> None:
    from fastapi import FastAPI

    router = APIRouter()

    @router.get("/bare", dependencies=[app.public])
    async def bare() -> str:
        return "ok"

    @router.get("/wrapped", dependencies=[Depends(app.public)])
    async def wrapped() -> str:
        return "ok"

    served = FastAPI()
    served.include_router(router)
    with TestClient(served) as http:
        assert [http.get(p).json() for p in ("/bare", "/wrapped")] == ["ok", "ok"]


# ---- deprecated names and spellings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("app.edge.limiter", "Limiter", "RateCounter"),
        ("app.authserver.context", "Context", "FacadeContext"),
        ("app.toolkit.testing", "Caller", "ClientFactory"),
        ("app.toolkit.testing", "ApiCaller", "ApiClientFactory"),
    ],
)
def test_renamed_names_keep_their_old_alias_for_a_release(module: str, old: str, new: str) -> None:
    imported = __import__(module, fromlist=[new])
    with pytest.warns(DeprecationWarning, match=rf"{old} is renamed {new}"):
        assert getattr(imported, old) is getattr(imported, new)
    with pytest.raises(AttributeError):
        assert imported.NoSuchName is None


def test_decorator_secrets_still_declare_and_warn() -> None:
    with pytest.warns(DeprecationWarning, match=r"Annotated\[str, Secret\("):

        @app.tool(scopes=["mcp.read"], secrets=["weather--api-key"])
        def forecast() -> str:
            return "sunny"

    assert getattr(forecast, SPEC_ATTR).secrets == frozenset({"weather--api-key"})


def test_every_current_name_still_imports() -> None:
    for name in app.__all__:
        assert getattr(app, name) is not None


# ---- per-tool policy: one lookup; which of it holds over stdio --------------------------------------------------
POLICY_TOOLS = """
    import asyncio

    from app import tool

    @tool(scopes=["mcp.read"], rate="1/minute")
    def rated() -> str:
        return "ok"

    @tool(scopes=["mcp.read"], timeout=0.2)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @tool(scopes=["mcp.read"])
    def big() -> str:
        return "x" * 5000

    @tool(scopes=["files.write"])
    def guarded() -> str:
        return "written"
"""


def test_policy_fills_in_the_server_wide_defaults(entra: EntraStandIn, tmp_path: Path) -> None:
    (tmp_path / "policy_tools.py").write_text(textwrap.dedent(POLICY_TOOLS))
    catalog = discover(tmp_path)
    server_wide = Policy(rate=None, timeout=7, max_result_bytes=4096)
    assert catalog.policy("slow", server_wide) == Policy(rate=None, timeout=0.2, max_result_bytes=4096)
    assert catalog.policy("rated", server_wide) == Policy(rate="1/minute", timeout=7, max_result_bytes=4096)
    assert catalog.policy("unknown", server_wide) == Policy(rate=None, timeout=7, max_result_bytes=4096)
    shipped = SecuritySettings()  # no server-wide values given: the settings' defaults
    assert Catalog().policy("x") == Policy(None, shipped.tool_timeout_seconds, shipped.max_result_bytes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.policy("slow").timeout = 1  # type: ignore[misc]


def test_every_policy_field_is_declared_stdio_or_http_only() -> None:
    fields = {f.name for f in dataclasses.fields(Policy)}
    assert fields == Policy.STDIO | Policy.HTTP_ONLY and not Policy.STDIO & Policy.HTTP_ONLY
    # pinned: docs/tools.md#per-tool-limits says the same
    assert {"timeout", "max_result_bytes", "task"} == Policy.STDIO


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_enforces_authorization_timeout_and_result_size_but_not_the_rate(
    entra: EntraStandIn, tmp_path: Path, mode: str
) -> None:
    """The server `python -m app stdio` builds (app/local/serve.py: `build_local`, with the signed-in caller)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "policy_tools.py").write_text(textwrap.dedent(POLICY_TOOLS))
    settings = settings_for(
        entra,
        free_port(),  # a resource host only: the stdio build binds nothing
        app_env="development",
        security={"max_result_bytes": 2048},
        tools={"dir": tools, "lock_mode": "off"},
        stdio={"data_dir": tmp_path / "data", "allow_plain_cache": True},
        audit={"sink": "off"},
    )
    core, _identity, signed_in = build_local(settings)
    signed_in.append(Principal(TENANT, "sub", "oid", "client", frozenset({"mcp.read"}), frozenset(), "i", "2.0", "j"))
    results: dict[str, Any] = {}
    async with Client(core.mcp, mode=mode) as client:  # either era reads the refusals
        results["slow"] = await client.call_tool("slow", {})
        results["big"] = await client.call_tool("big", {})
        results["rated"] = [await client.call_tool("rated", {}) for _ in range(3)]
        results["guarded"] = await client.call_tool("guarded", {})  # authorized inside the SDK, as the user
    assert results["guarded"].is_error and "forbidden" in results["guarded"].content[0].text
    assert results["slow"].is_error and "did not finish within 0.2 s" in results["slow"].content[0].text
    assert results["big"].is_error and "over the 2048-byte limit" in results["big"].content[0].text
    assert [r.is_error for r in results["rated"]] == [False, False, False]  # the rate is HTTP middleware only
