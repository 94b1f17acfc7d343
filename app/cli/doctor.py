"""`doctor`: check this configuration against reality, one line per finding with its fix (exit 1 on any error).

The checks are in app/doctor/ and take plain values; this module alone reads settings, picks the checks they call
for and hands them values. `--url` checks a deployed server from outside and reads no settings at all.
"""

from __future__ import annotations

import sys
import warnings
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from app.cli.common import fail
from app.core.findings import Finding, error, ok, skip
from app.doctor.report import as_json, as_text, exit_code, guarded, labelled
from app.entra.graph import GRAPH_URL

if TYPE_CHECKING:  # the checks' modules are imported when they run: `--help` reads and imports no more than it needs
    import httpx2

    from app.entra.needs import AppNeeds
    from app.settings import Served, Settings

_SERVERS_HELP = "check only this server of the app: its SERVERS__{KEY} name (empty: the first)"


def doctor(
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="check a deployed server from outside (its MCP URL, e.g. https://host/mcp); reads no settings"
        ),
    ] = None,
    server: Annotated[str | None, typer.Option("--server", help=_SERVERS_HELP)] = None,
    graph: Annotated[
        bool | None,
        typer.Option(
            "--graph/--no-graph",
            help="read the app registration through Microsoft Graph (default: when "
            "the settings name an Entra tenant; an unavailable credential is a skip)",
        ),
    ] = None,
    graph_url: Annotated[
        str, typer.Option("--graph-url", envvar="GRAPH_URL", help="Microsoft Graph (a national cloud's)")
    ] = GRAPH_URL,
    as_json_output: Annotated[bool, typer.Option("--json", help="one JSON document {ok, findings} for CI")] = False,
) -> None:
    """Check this configuration against reality: one line per finding, with the fix (exit 1 on any error)."""
    if url is not None:
        if server is not None:
            fail("doctor: --server checks a server of these settings; --url checks a deployed one (use one)")
        findings = _blackbox(url)
    else:
        findings = _configured(server, graph, graph_url)
    typer.echo(as_json(findings) if as_json_output else as_text(findings, terminal=sys.stdout.isatty()))
    raise typer.Exit(exit_code(findings))


def _blackbox(url: str) -> list[Finding]:
    from app.doctor.http import client
    from app.doctor.metadata import blackbox_findings

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        fail(f"doctor: --url must be the MCP endpoint's URL, e.g. https://mcp.contoso.com/mcp (not {url[:100]!r})")
    with client() as http:
        return guarded("blackbox", lambda: blackbox_findings(http, url))


def _configured(key: str | None, graph: bool | None, graph_url: str) -> list[Finding]:
    from app.compose.review import app_needs
    from app.doctor.http import client
    from app.doctor.issuer import issuer_findings
    from app.settings import UnknownServerError

    settings, findings = _settings()
    if settings is None:
        return findings
    try:
        served = [settings.served_one(key.lower())] if key is not None else settings.served()
    except UnknownServerError as exc:
        fail(f"doctor: {exc}")
    with client() as http:
        findings += guarded(
            "issuer",
            lambda: issuer_findings(http, settings.instance, settings.tenant_id, settings.dev_issuer_active),
        )
        if settings.azuread.managed_identity:
            findings += guarded("managed-identity", lambda: _identity(settings))
        if settings.keyvault.url:
            findings += guarded("keyvault", lambda: _vault(settings, served))
        findings += guarded("redis", lambda: _redis(settings))
        try:
            needs = app_needs(settings, key.lower() if key is not None else None)
        except Exception as exc:  # a tool or route that does not import
            needs = []
            message = f"the servers' tools and routes cannot be loaded ({type(exc).__name__}): {exc}"
            findings.append(error("servers", message[:600], "fix the module the message names"))
        for one in served:
            findings += labelled(one.key, _server_checks(http, settings, one, [n for n in needs if n.key == one.key]))
    return findings + _registrations(settings, needs, graph, graph_url)


def _server_checks(http: httpx2.Client, settings: Settings, one: Served, needs: list[AppNeeds]) -> list[Finding]:
    """One server's checks that need no Graph: its App ID URI, its tools.lock, its metadata where clients read it."""
    from app.doctor.metadata import prm_findings
    from app.doctor.registration import app_id_uri_findings

    found: list[Finding] = []
    for one_needs in needs:
        found += guarded("app-id-uri", partial(app_id_uri_findings, one_needs))
    found += guarded("tools-lock", partial(_lock, settings, one))
    for one_needs in needs:
        found += guarded("prm", partial(prm_findings, http, one_needs.resource))
    return found


def _settings() -> tuple[Settings | None, list[Finding]]:
    """Settings as the server reads them; when Key Vault fails them, a finding and the settings without the vault
    (so the other checks still run; None when they do not load without it). Any other configuration error: one
    line, exit 2."""
    from app.compose.startup import startup_line
    from app.doctor.vault import ACCESS_FIX
    from app.settings import Settings
    from app.settings.keyvault import KeyVaultError

    try:
        return Settings(), []
    except KeyVaultError as exc:
        vault = error("keyvault", exc.line().removeprefix("secrets error: "), ACCESS_FIX)
    except Exception as exc:
        fail(startup_line(exc) or f"configuration error: {type(exc).__name__}")
    try:
        return Settings(keyvault={"url": None}), [vault]
    except Exception:  # without the vault's secrets the settings are incomplete: the vault's finding is the report
        return None, [vault]


def _vault(settings: Settings, served: list[Served]) -> list[Finding]:
    """Every secret the server will ask the vault for: its settings' secrets that this configuration needs and the
    tools' declared secrets, each unless the environment, `.env` or the secrets directory already supplies it."""
    from app.catalog.discovery import discover
    from app.compose.secrets import load_tool_secrets
    from app.doctor.vault import vault_findings
    from app.secrets.store import SecretsError
    from app.settings import KeyVaultSettings
    from app.settings.keyvault import credential_for

    kv = settings.keyvault
    assert kv.url is not None
    needed: dict[str, str] = {}
    needs_state_keys = settings.mcp.stateless or settings.workers > 1
    if settings.app_env == "production" and needs_state_keys:
        needed["mcp--request-state-keys"] = "MCP__REQUEST_STATE_KEYS: the shared requestState key ring"
    for one in served if settings.auth_server.enabled else ():
        if one.certificate_path is None and not one.managed_identity:
            needed[one.secret_name] = f"{one.label}: the facade signs users in with this server's client secret"
    for one in served:
        for name in sorted(discover(one.tools_dir).secrets):
            needed.setdefault(name, f"declared by a tool of {one.name}")
    without_vault = settings.model_copy(update={"keyvault": KeyVaultSettings()})

    def elsewhere(name: str) -> bool:
        try:
            load_tool_secrets([name], without_vault)  # env `A__B`, `.env`, the secrets directory
            return True
        except SecretsError:
            return False

    expected = {name: why for name, why in needed.items() if not elsewhere(name)}
    return vault_findings(kv.url, credential_for(kv), expected, ca_file=kv.ca_file, timeout=kv.timeout_seconds)


def _identity(settings: Settings) -> list[Finding]:
    """AZUREAD__MANAGED_IDENTITY: the identity gives this server its client assertion (what OBO and the facade send)."""
    from app.auth.assertion import AssertionUnavailable
    from app.compose.secrets import server_assertion

    assertion = server_assertion(settings)
    assert assertion is not None
    try:
        assertion()
    except AssertionUnavailable as exc:
        fix = (
            "assign the managed identity to this workload, and trust it on the app registration: "
            "secure-mcp-server entra register --managed-identity <its object id> (docs/deployment.md)"
        )
        return [error("managed-identity", str(exc), fix)]
    return [ok("managed-identity", "the managed identity gives this server its client assertion (no secret)")]


def _redis(settings: Settings) -> list[Finding]:
    from app.doctor.redis import redis_findings

    if not settings.redis_uri:
        return [skip("redis", "RATE_LIMIT__STORAGE_URI is not Redis: limits are counted in this process's memory")]
    return redis_findings(settings.redis_uri)


def _lock(settings: Settings, one: Served) -> list[Finding]:
    from app.doctor.lock import lock_findings
    from app.toolkit.toolslock import current_for

    if settings.tools_lock_mode == "off":
        return [skip("tools-lock", "TOOLS__LOCK_MODE=off: the lock is not compared")]
    command = f"secure-mcp-server tools-lock --server {one.key}" if one.key else "make tools-lock"

    def current() -> dict[str, Any]:
        with warnings.catch_warnings():  # the review build's settings warn about config keys it does not use
            warnings.simplefilter("ignore", UserWarning)
            return current_for(one.tools_dir)

    return lock_findings(one.lock_path, current, command)


def _registrations(settings: Settings, needs: list[AppNeeds], graph: bool | None, graph_url: str) -> list[Finding]:
    """`registration`: through Graph when asked (or by default when the settings name an Entra tenant)."""
    from app.doctor.registration import graph_findings

    if graph is False:
        return [skip("registration", "Microsoft Graph not read (--no-graph)")]
    if settings.dev_issuer_active or not settings.azuread.tenant_id:
        return [skip("registration", "no Entra tenant in the settings (the dev issuer stands in): nothing to read")]
    if not needs:
        return []

    def run() -> list[Finding]:
        from azure.identity import DefaultAzureCredential

        return graph_findings(needs, DefaultAzureCredential(), graph_url)

    return guarded("registration", run)
