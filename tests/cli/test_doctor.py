"""`secure-mcp-server doctor` end to end, in-process: settings from the environment as the server reads them, the
Entra, Microsoft Graph (with a real azure-identity credential through a managed identity endpoint) and Key Vault
stand-ins, and the real app on a real uvicorn for the metadata. Exit 0 healthy, 1 on an error finding, 2 on a usage
error; `--json` for CI; `--url` from outside."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import cli
from app.compose.review import app_needs
from app.entra.manifest import desired
from app.toolkit import toolslock
from tests.support.doctor import Documents
from tests.support.entra import EntraStandIn
from tests.support.graph import GraphStandIn
from tests.support.identity import PATH, IdentityStandIn
from tests.support.keyvault import KeyVaultStandIn, TlsFiles, vault_section
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, JWT_SHAPED, REPO, REQUEST_STATE_KEY, TENANT

SETTINGS_PREFIXES = ("APP_", "AZUREAD__", "MCP__", "TOOLS__", "ROUTES__", "KEYVAULT__", "SERVERS__", "AUTH_SERVER__",
                     "RATE_LIMIT__", "AZURE_", "IDENTITY_", "MSI_", "GRAPH_URL")  # fmt: skip
WEATHER = """
    from typing import Annotated

    from app import Secret, tool


    @tool(scopes=["weather.read"])
    def forecast(city: str, api_key: Annotated[str, Secret("weather--api-key")]) -> str:
        \"\"\"Tomorrow's forecast for a city.\"\"\"
        return api_key[:0] + f"sunny in {city}"
    """


@pytest.fixture(scope="module")
def identity(entra: EntraStandIn, _graph_server: GraphStandIn) -> Iterator[IdentityStandIn]:
    """The platform's managed identity endpoint: this process's Graph tokens (audience: the Graph stand-in)."""
    stand_in = IdentityStandIn(entra, TENANT, resources={_graph_server.base})
    with ServerThread(stand_in.app()) as server:
        stand_in.endpoint = f"{server.url}{PATH}"
        yield stand_in


@pytest.fixture
def tools(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repository's tools plus one that declares a secret, and its tools.lock."""
    folder = tmp_path / "project" / "tools"
    shutil.copytree(REPO / "tools", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "weather.py").write_text(textwrap.dedent(WEATHER))
    lock = folder.parent / "tools.lock"
    lock.write_text(toolslock.render(toolslock.current_for(folder)))
    return folder, lock


@pytest.fixture
def setup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    entra: EntraStandIn,
    keyvault: KeyVaultStandIn,
    vault_tls: TlsFiles,
    graph: GraphStandIn,
    graph_tls: TlsFiles,
    identity: IdentityStandIn,
    tools: tuple[Path, Path],
    serve: Callable[..., ServerThread],
) -> dict[str, Any]:
    """A healthy production setup: the server running, its registration in Graph, its tool secret in the vault; the
    environment holds its settings (and nothing else the doctor reads), the working directory no `.env`."""
    for name in list(os.environ):
        if name.startswith(SETTINGS_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    folder, lock = tools
    keyvault.set("weather--api-key", "weather-key-value")
    server = serve(tools={"dir": folder, "lock_file": lock}, keyvault=vault_section(keyvault, vault_tls))
    stand_in = graph
    (needs,) = app_needs(server.settings)  # type: ignore[attr-defined]
    stand_in.add_application({**desired(needs).body, "appId": CLIENT_ID})
    env = {
        "APP_ENV": "production",
        "AZUREAD__INSTANCE": entra.base,
        "AZUREAD__TENANT_ID": TENANT,
        "AZUREAD__CLIENT_ID": CLIENT_ID,
        "MCP__RESOURCE_HOST": server.settings.resource_host,  # type: ignore[attr-defined]
        "MCP__REQUEST_STATE_KEYS": REQUEST_STATE_KEY,
        "TOOLS__DIR": str(folder),
        "TOOLS__LOCK_FILE": str(lock),
        "KEYVAULT__URL": keyvault.base,
        "KEYVAULT__CREDENTIAL": "local-issuer",
        "KEYVAULT__CA_FILE": str(vault_tls.ca),
        "GRAPH_URL": stand_in.base,
        "SSL_CERT_FILE": str(graph_tls.ca),  # httpx2 (the Graph client) trusts the stand-in's test CA
        **identity.environ(),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {"server": server, "graph": stand_in, "needs": needs}


def doctor(*args: str) -> Result:
    return CliRunner().invoke(cli, ["doctor", *args])


def findings(result: Result) -> dict[str, list[dict[str, str]]]:
    document = json.loads(result.stdout)
    found: dict[str, list[dict[str, str]]] = {}
    for finding in document["findings"]:
        found.setdefault(finding["check"], []).append(finding)
    return found


def test_a_healthy_setup_is_reported_healthy(setup: dict[str, Any]) -> None:
    result = doctor()
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("healthy: ") and "0 error(s)" in lines[-1] and "0 warning(s)" in lines[-1]
    checks = {line.split(" ", 2)[1].rstrip(":") for line in lines[:-1] if not line.startswith("  ")}
    assert {"issuer", "jwks", "keyvault", "app-registration", "scopes", "token-version", "app-id-uri", "tools-lock",
            "prm"} <= checks  # fmt: skip
    assert all(line.split(" ", 1)[0] in ("ok", "skip") for line in lines[:-1]), result.stdout
    assert setup["graph"].tokens, "the registration was read through Graph with a token"


def test_json_is_one_document_with_ok_and_every_finding(setup: dict[str, Any]) -> None:
    result = doctor("--json", "--no-graph")
    document = json.loads(result.stdout)
    assert set(document) == {"ok", "findings"} and document["ok"] is True and result.exit_code == 0
    assert all(set(f) == {"check", "status", "message", "fix"} for f in document["findings"])
    assert {"check": "registration", "status": "skip", "message": "Microsoft Graph not read (--no-graph)",
            "fix": ""} in document["findings"]  # fmt: skip
    assert not setup["graph"].requests, "--no-graph reads nothing from Graph"


def test_an_api_app_id_uri_while_clients_send_the_url_is_found(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREAD__APP_ID_URI", "api://{client_id}")
    result = doctor("--json", "--no-graph")
    assert result.exit_code == 1
    (found,) = findings(result)["app-id-uri"]
    assert found["status"] == "error" and f"api://{CLIENT_ID}" in found["message"]
    assert "AADSTS9010010" in found["message"] and "AZUREAD__APP_ID_URI" in found["fix"]


def test_a_missing_scope_on_the_app_is_found_through_graph(setup: dict[str, Any]) -> None:
    app = setup["graph"].application(CLIENT_ID)
    app["api"]["oauth2PermissionScopes"] = [
        s for s in app["api"]["oauth2PermissionScopes"] if s["value"] != "weather.read"
    ]
    result = doctor("--json")
    assert result.exit_code == 1
    (scopes,) = findings(result)["scopes"]
    assert scopes["status"] == "error" and "weather.read" in scopes["message"]


def test_v1_tokens_configured_are_found_through_graph(setup: dict[str, Any]) -> None:
    setup["graph"].application(CLIENT_ID)["api"]["requestedAccessTokenVersion"] = 1
    (version,) = findings(doctor("--json"))["token-version"]
    assert version["status"] == "warn" and "v1 tokens" in version["message"]


def test_the_managed_identity_is_checked_when_it_is_the_credential(
    setup: dict[str, Any], identity: IdentityStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AZUREAD__MANAGED_IDENTITY: the identity endpoint must give the assertion; a failing one is an error with the
    fix, and no token is printed either way."""
    monkeypatch.setenv("AZUREAD__MANAGED_IDENTITY", "true")
    healthy = doctor("--json", "--no-graph")
    (found,) = findings(healthy)["managed-identity"]
    assert found["status"] == "ok" and healthy.exit_code == 0, healthy.output
    assert any(r["resource"] == "api://AzureADTokenExchange" for r in identity.requests)
    identity.failing = True
    try:
        broken = doctor("--json", "--no-graph")
    finally:
        identity.failing = False
    (found,) = findings(broken)["managed-identity"]
    assert broken.exit_code == 1 and found["status"] == "error"
    assert "managed identity" in found["message"] and "entra register --managed-identity" in found["fix"]
    assert not JWT_SHAPED.search(healthy.output + broken.output)


def test_a_missing_key_vault_secret_is_found(setup: dict[str, Any], keyvault: KeyVaultStandIn) -> None:
    keyvault.clear()
    result = doctor("--json", "--no-graph")
    assert result.exit_code == 1
    (vault,) = findings(result)["keyvault"]
    assert vault["status"] == "error" and "weather--api-key is missing" in vault["message"]
    assert "az keyvault secret set" in vault["fix"] and "--name weather--api-key" in vault["fix"]


def test_a_tool_secret_set_in_the_environment_is_not_expected_in_the_vault(
    setup: dict[str, Any], keyvault: KeyVaultStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyvault.clear()
    monkeypatch.setenv("WEATHER__API_KEY", "from-the-environment")
    (vault,) = findings(doctor("--json", "--no-graph"))["keyvault"]
    assert vault["status"] == "ok"


def test_a_vault_that_fails_the_settings_is_a_finding_and_the_other_checks_still_run(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYVAULT__URL", f"https://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("KEYVAULT__TIMEOUT_SECONDS", "3")
    result = doctor("--json", "--no-graph")
    assert result.exit_code == 1 and "Traceback" not in result.output
    found = findings(result)
    (vault,) = found["keyvault"]
    assert vault["status"] == "error" and "azuread--client-secret" in vault["message"]
    assert found["issuer"][0]["status"] == "ok" and found["tools-lock"][0]["status"] == "ok"


def test_a_lock_mismatch_is_found(setup: dict[str, Any], tools: tuple[Path, Path]) -> None:
    _, lock = tools
    lock.write_text(toolslock.render({"version": 1, "tools": [], "resources": [], "resource_templates": [],
                                      "prompts": []}))  # fmt: skip
    result = doctor("--json", "--no-graph")
    assert result.exit_code == 1
    (stale,) = findings(result)["tools-lock"]
    assert stale["status"] == "error" and "'forecast' is served but not in tools.lock" in stale["message"]
    assert "make tools-lock" in stale["fix"]


def test_the_running_server_is_healthy_from_outside(setup: dict[str, Any]) -> None:
    result = doctor("--url", setup["needs"].resource)
    assert result.exit_code == 0, result.output
    assert "prm:" in result.stdout and "challenge:" in result.stdout and "auth-server:" in result.stdout


def test_a_server_whose_metadata_names_another_resource_fails_from_outside() -> None:
    stand_in = Documents()
    with ServerThread(stand_in.app()) as server:
        stand_in.set("/.well-known/oauth-protected-resource/mcp", {"resource": "https://other.example/mcp"})
        result = doctor("--json", "--url", f"{server.url}/mcp")
    assert result.exit_code == 1
    (prm,) = findings(result)["prm"]
    assert prm["status"] == "error" and "https://other.example/mcp" in prm["message"]


@pytest.mark.parametrize(
    "args",
    [["--url", "ftp://host/mcp"], ["--url", "https://host/mcp", "--server", "hr"], ["--server", "nosuch"]],
    ids=["not-http", "url-and-server", "unknown-server"],
)
def test_a_usage_error_is_one_line_and_exit_2(setup: dict[str, Any], args: list[str]) -> None:
    result = doctor(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_settings_that_need_the_failing_vault_leave_the_vault_finding_alone(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production with MCP__STATELESS needs the request-state keys the vault was to supply: nothing else can run."""
    monkeypatch.setenv("KEYVAULT__URL", f"https://127.0.0.1:{free_port()}/")
    monkeypatch.setenv("MCP__STATELESS", "true")
    monkeypatch.delenv("MCP__REQUEST_STATE_KEYS")
    result = doctor("--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [f["check"] for f in json.loads(result.stdout)["findings"]] == ["keyvault"]
