"""FastAPI routes beside MCP (`routes/`): the same token rules, challenges and audit as `/mcp`, on a real uvicorn.

The repository's `routes/whoami.py` is served by default; `tests/support/routes_sample` adds a scope guard with a
path parameter, an any-caller route and a public one; `tests/support/routes_unguarded` forgets its auth.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.api.discovery import RouteDiscoveryError, discover_routes
from app.main import create_app
from tests.support.app_process import app_process
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, REPO, TENANT, settings_for

SAMPLE_ROUTES = REPO / "tests" / "support" / "routes_sample"
UNGUARDED_ROUTES = REPO / "tests" / "support" / "routes_unguarded"
APP_ID = "cccccccc-0000-4000-8000-0000000000a5"


def _records(audit: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit.read_text().splitlines()]


def _scope_uri(server: ServerThread, scope: str) -> str:
    return server.settings.scope_uri(scope)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def audited(serve: Callable[..., ServerThread], tmp_path: Path) -> tuple[ServerThread, Path]:
    audit = tmp_path / "audit.jsonl"
    return serve(audit={"sink": f"file:{audit}"}), audit


# ---- GET /api/whoami, the shipped example ---------------------------------------------------------------------------
async def test_whoami_without_a_token_is_a_401_naming_the_metadata(app_server: ServerThread) -> None:
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.get("/api/whoami")
    assert response.status_code == 401
    www = response.headers["www-authenticate"]
    assert www.startswith("Bearer ") and 'error="' not in www  # RFC 6750 §3.1: no error without credentials
    assert f'resource_metadata="{app_server.settings.resource_metadata_url}"' in www  # type: ignore[attr-defined]
    assert _scope_uri(app_server, "mcp.read") in www  # the scopes PRM lists, as /mcp's 401 names them
    assert response.json() == {"error": "unauthorized", "error_description": "Authentication required"}
    assert response.headers["cache-control"] == "no-store"


async def test_whoami_answers_the_callers_public_view_and_is_audited(
    audited: tuple[ServerThread, Path], token: Callable[..., str]
) -> None:
    server, audit = audited
    async with httpx2.AsyncClient(base_url=server.url) as http:
        response = await http.get("/api/whoami", headers={"Authorization": f"Bearer {token('mcp.read')}"})
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "user" and body["tid"] == TENANT and body["scopes"] == ["mcp.read"]
    assert "token" not in json.dumps(body).lower()
    (record,) = [r for r in _records(audit) if r["event"] == "route_access"]
    assert record["outcome"] == "allowed" and record["route"] == "/api/whoami" and record["http_method"] == "GET"
    assert record["principal"]["tid"] == TENANT


async def test_whoami_without_the_scope_is_a_403_step_up_naming_it(
    audited: tuple[ServerThread, Path], token: Callable[..., str]
) -> None:
    server, audit = audited
    async with httpx2.AsyncClient(base_url=server.url) as http:
        response = await http.get("/api/whoami", headers={"Authorization": f"Bearer {token('notes.read')}"})
    assert response.status_code == 403
    www = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in www
    assert f'scope="{_scope_uri(server, "mcp.read")}"' in www
    assert "resource_metadata=" in www
    assert response.json()["scope"] == _scope_uri(server, "mcp.read")
    (record,) = [r for r in _records(audit) if r["event"] == "route_access"]
    assert record["outcome"] == "denied" and "mcp.read" in record["reason"]


async def test_an_app_only_token_with_the_role_passes_and_without_it_is_refused(
    app_server: ServerThread, entra: EntraStandIn
) -> None:
    def app_token(roles: list[str]) -> str:
        return entra.app_token(tenant=TENANT, audience=CLIENT_ID, roles=roles, app_id=APP_ID)

    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        allowed = await http.get("/api/whoami", headers={"Authorization": f"Bearer {app_token(['mcp.read.all'])}"})
        refused = await http.get("/api/whoami", headers={"Authorization": f"Bearer {app_token(['other.role'])}"})
    assert allowed.status_code == 200
    assert allowed.json()["kind"] == "app" and allowed.json()["roles"] == ["mcp.read.all"]
    assert refused.status_code == 403 and "mcp.read.all" in refused.json()["error_description"]


async def test_idtyp_when_present_decides_whether_the_caller_is_an_app(
    app_server: ServerThread, entra: EntraStandIn
) -> None:
    """Entra's optional `idtyp` claim is authoritative; the `oid == sub` rule applies only without it."""
    app_named = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=None, roles=["mcp.read.all"], oid=APP_ID,
                            app_id=APP_ID, sub="pairwise-subject-of-the-app", idtyp="app")  # fmt: skip
    user_named = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=None, roles=["mcp.read.all"],
                             oid="aaaaaaaa-0000-4000-8000-0000000000aa", sub="aaaaaaaa-0000-4000-8000-0000000000aa",
                             idtyp="user")  # fmt: skip
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        as_app = await http.get("/api/whoami", headers={"Authorization": f"Bearer {app_named}"})
        as_user = await http.get("/api/whoami", headers={"Authorization": f"Bearer {user_named}"})
    assert as_app.status_code == 200 and as_app.json()["kind"] == "app"  # oid != sub, yet an app: idtyp says so
    assert as_user.status_code == 403  # a user (idtyp) needs the scope: an app role does not make it an app
    assert "mcp.read" in as_user.json()["error_description"]


# ---- the token transport rules of /mcp ------------------------------------------------------------------------------
async def test_a_token_in_the_query_and_the_header_is_a_400(
    audited: tuple[ServerThread, Path], token: Callable[..., str]
) -> None:
    server, audit = audited
    t = token("mcp.read")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        response = await http.get(f"/api/whoami?access_token={t}", headers={"Authorization": f"Bearer {t}"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    assert [r["reason"] for r in _records(audit) if r["event"] == "authn_failure"] == ["token_in_query"]


async def test_a_query_string_token_alone_is_no_token(app_server: ServerThread, token: Callable[..., str]) -> None:
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        response = await http.get(f"/api/whoami?access_token={token('mcp.read')}")
    assert response.status_code == 401


async def test_a_form_body_and_two_authorization_headers_are_400s(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(routes={"dir": SAMPLE_ROUTES})
    t = token("mcp.read")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        form = await http.post(
            "/api/echo",
            headers={"Authorization": f"Bearer {t}", "Content-Type": "application/x-www-form-urlencoded"},
            content=f"access_token={t}".encode(),
        )
        twice = await http.get(
            "/api/reports/1", headers=[("Authorization", f"Bearer {t}"), ("Authorization", f"Bearer {t}")]
        )
    assert form.status_code == 400 and form.json()["error"] == "invalid_request"
    assert twice.status_code == 400


async def test_an_invalid_token_is_a_401_invalid_token_and_an_authn_failure_record(
    audited: tuple[ServerThread, Path], token: Callable[..., str]
) -> None:
    server, audit = audited
    async with httpx2.AsyncClient(base_url=server.url) as http:
        wrong_audience = await http.get(
            "/api/whoami", headers={"Authorization": f"Bearer {token('mcp.read', audience='api://someone-else')}"}
        )
    assert wrong_audience.status_code == 401
    assert 'error="invalid_token"' in wrong_audience.headers["www-authenticate"]
    failures = [r for r in _records(audit) if r["event"] == "authn_failure"]
    assert len(failures) == 1 and failures[0]["outcome"] == "failure"


async def test_failed_attempts_spend_the_per_ip_budget_public_routes_do_not(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(routes={"dir": SAMPLE_ROUTES}, rate_limit={"unauthenticated": "3/minute"})
    async with httpx2.AsyncClient(base_url=server.url) as http:
        public = [(await http.get("/api/status")).status_code for _ in range(5)]
        failed = [(await http.get("/api/reports/1")).status_code for _ in range(3)]
        refused = await http.get("/api/reports/1", headers={"Authorization": f"Bearer {token('reports.read')}"})
        mcp = await http.post("/mcp", json={}, headers={"Authorization": "Bearer not-a-token"})
    assert public == [200] * 5  # a public route is not an authentication attempt
    assert failed == [401] * 3
    # The budget is spent: even a valid token waits (nothing is validated for this IP until the window moves on).
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "rate_limited"
    assert mcp.status_code == 429  # one budget per IP, shared with /mcp


async def test_route_bodies_are_bounded(serve: Callable[..., ServerThread], token: Callable[..., str]) -> None:
    server = serve(routes={"dir": SAMPLE_ROUTES}, security={"max_body_bytes": 2048})
    headers = {"Authorization": f"Bearer {token('mcp.read')}"}
    async with httpx2.AsyncClient(base_url=server.url) as http:
        small = await http.post("/api/echo", json={"a": "x" * 100}, headers=headers)
        large = await http.post("/api/echo", json={"a": "x" * 5000}, headers=headers)
    assert small.status_code == 200
    assert large.status_code == 413


# ---- routes from ROUTES__DIR ---------------------------------------------------------------------------------------
async def test_sample_routes_scope_guard_caller_and_public(
    serve: Callable[..., ServerThread], token: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.routes"):
        server = serve(routes={"dir": SAMPLE_ROUTES})
    assert any("GET /api/status" in r.getMessage() and "public" in r.getMessage() for r in caplog.records)
    reader, other = token("mcp.read reports.read"), token("mcp.read")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        ok = await http.get("/api/reports/7", headers={"Authorization": f"Bearer {reader}"})
        step_up = await http.get("/api/reports/7", headers={"Authorization": f"Bearer {other}"})
        bad_param = await http.get("/api/reports/x", headers={"Authorization": f"Bearer {reader}"})
        echo = await http.post("/api/echo", json={"b": 1, "a": 2}, headers={"Authorization": f"Bearer {other}"})
        echo_anonymous = await http.post("/api/echo", json={"a": 1})
        status = await http.get("/api/status")
        whoami_gone = await http.get("/api/whoami", headers={"Authorization": f"Bearer {reader}"})
    assert ok.status_code == 200 and ok.json()["report"] == 7
    assert step_up.status_code == 403
    assert f'scope="{_scope_uri(server, "reports.read")}"' in step_up.headers["www-authenticate"]
    assert bad_param.status_code == 422  # FastAPI's validation error, after auth
    assert echo.status_code == 200 and echo.json() == {"kind": "user", "keys": ["a", "b"]}
    assert echo_anonymous.status_code == 401
    assert status.status_code == 200 and status.json() == {"status": "ok"}
    assert whoami_gone.status_code == 404  # ROUTES__DIR replaces the repository's routes/


async def test_route_scopes_are_in_the_protected_resource_metadata(serve: Callable[..., ServerThread]) -> None:
    server = serve(routes={"dir": SAMPLE_ROUTES})
    async with httpx2.AsyncClient(base_url=server.url) as http:
        prm = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert _scope_uri(server, "reports.read") in prm["scopes_supported"]


def test_a_route_without_auth_fails_startup_naming_it(entra: EntraStandIn) -> None:
    with pytest.raises(RouteDiscoveryError) as caught:
        create_app(settings_for(entra, free_port(), routes={"dir": UNGUARDED_ROUTES}))
    message = str(caught.value)
    assert "GET /api/open-door" in message and "open_door.py" in message and "declares no auth" in message


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_python_m_app_refuses_an_unguarded_route_with_one_line(entra: EntraStandIn, tmp_path: Path) -> None:
    unguarded = app_process(entra, tmp_path, ROUTES__DIR=str(UNGUARDED_ROUTES))
    with pytest.raises(AssertionError) as caught, unguarded:
        pass
    output = (tmp_path / "app.log").read_text()
    assert "routes error: route GET /api/open-door" in output and "Traceback" not in output, output
    assert "app exited" in str(caught.value)


async def test_python_m_app_serves_the_repositorys_routes(
    entra: EntraStandIn, tmp_path: Path, token: Callable[..., str]
) -> None:
    with app_process(entra, tmp_path) as url:
        async with httpx2.AsyncClient(base_url=url) as http:
            response = await http.get("/api/whoami", headers={"Authorization": f"Bearer {token('mcp.read')}"})
    assert response.status_code == 200 and response.json()["kind"] == "user"


def test_discovery_refuses_what_is_not_a_router_and_skips_helpers(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    assert discover_routes(tmp_path).routers == []
    (tmp_path / "bad.py").write_text("router = object()\n")
    with pytest.raises(RouteDiscoveryError, match=r"not a fastapi\.APIRouter"):
        discover_routes(tmp_path)
    (tmp_path / "bad.py").unlink()
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RouteDiscoveryError, match=r"could not import routes module .*broken\.py: RuntimeError: boom"):
        discover_routes(tmp_path)
    assert discover_routes(tmp_path / "missing").routers == []  # no folder, no routes


@pytest.mark.parametrize(
    "marker", ["Secret('reports--api-key')", "Downstream(['https://graph.microsoft.com/.default'])"]
)
def test_a_route_parameter_marked_for_tools_only_fails_startup(tmp_path: Path, marker: str) -> None:
    """In a route FastAPI would fill such a parameter from the query string: the caller would choose the "secret"."""
    folder = tmp_path / f"marked_{'secret' if 'Secret' in marker else 'downstream'}"
    folder.mkdir()
    (folder / "marked_route.py").write_text(
        "from typing import Annotated\n"
        "from fastapi import APIRouter\n"
        "from app import Caller, Downstream, Secret\n"
        "router = APIRouter()\n"
        "@router.get('/api/marked')\n"
        f"async def marked(caller: Caller, value: Annotated[str, {marker}]) -> str:\n"
        "    return value\n"
    )
    with pytest.raises(RouteDiscoveryError, match=r"route GET /api/marked .*parameter 'value' is marked Secret"):
        discover_routes(folder)


def test_requires_needs_lists_of_scopes_or_roles() -> None:
    from app import requires

    with pytest.raises(TypeError, match="lists of names"):
        requires(scopes="files.read")
    with pytest.raises(TypeError, match="needs scopes or roles"):
        requires()


# ---- OpenAPI ---------------------------------------------------------------------------------------------------------
async def test_openapi_is_off_by_default_and_shows_the_oauth2_scheme_when_on(
    serve: Callable[..., ServerThread],
) -> None:
    off = serve()
    on = serve(routes={"dir": SAMPLE_ROUTES, "openapi": True})
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{off.url}/openapi.json")).status_code == 404
        schema = (await http.get(f"{on.url}/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["entra"]
    flow = scheme["flows"]["authorizationCode"]
    assert scheme["type"] == "oauth2"
    assert flow["authorizationUrl"] == f"{on.settings.instance}{TENANT}/oauth2/v2.0/authorize"  # type: ignore[attr-defined]
    assert flow["tokenUrl"].endswith(f"{TENANT}/oauth2/v2.0/token")
    assert _scope_uri(on, "reports.read") in flow["scopes"]
    report = schema["paths"]["/api/reports/{report_id}"]["get"]
    assert report["security"] == [{"entra": [_scope_uri(on, "reports.read")]}]
    assert schema["paths"]["/api/echo"]["post"]["security"] == [{"entra": []}]
    assert "security" not in schema["paths"]["/api/status"]["get"]
    assert "/mcp" not in schema["paths"] and "/healthz" not in schema["paths"]


# ---- the image ------------------------------------------------------------------------------------------------------
def _docker_context(root: Path) -> set[str]:
    """The files .dockerignore lets into the build context (its rules in order, the last match wins)."""
    rules = [line.strip() for line in (root / ".dockerignore").read_text().splitlines()]
    rules = [r for r in rules if r and not r.startswith("#")]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kept = set()
    for path in tracked.split():
        included = True
        for rule in rules:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                included = negate
        if included:
            kept.add(path)
    return kept


def test_the_image_build_context_includes_routes() -> None:
    context = _docker_context(REPO)
    assert "routes/whoami.py" in context and "routes/__init__.py" in context
    assert "tools/whoami.py" in context and "app/main.py" in context
    assert not any(p.startswith(("tests/", "bench/", "docs/", ".ci/")) for p in context)
