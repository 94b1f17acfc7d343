"""The registration checks: the configured App ID URI against the resource clients send (no network), and the app
registration itself, read through Microsoft Graph (`app.entra.check` judges what Graph holds)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import replace

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from app.core.findings import Finding, error, ok, skip, warn
from app.entra.check import registration_findings
from app.entra.graph import READ_PERMISSION, GraphClient, GraphError
from app.entra.needs import AppNeeds

ENABLE_GRAPH = (
    f"sign in with `az login` as someone who can read app registrations ({READ_PERMISSION}), or run where a workload "
    f"or managed identity with {READ_PERMISSION} is available; `--no-graph` skips these checks"
)


def setting(needs: AppNeeds, name: str) -> str:
    """The environment variable of one of this server's settings: `AZUREAD__X` for the first, `SERVERS__K__X`."""
    return f"SERVERS__{needs.key.upper()}__{name}" if needs.key else f"AZUREAD__{name}"


def app_id_uri_findings(needs: AppNeeds) -> list[Finding]:
    """`app-id-uri`: Entra refuses an RFC 8707 `resource` that is not the App ID URI of the app that owns the scopes
    (AADSTS9010010), and every MCP client from 2025-06-18 on sends the server's URL as `resource`."""
    if needs.app_id_uri == needs.resource:
        return [ok("app-id-uri", f"the App ID URI is the resource clients send ({needs.resource})")]
    kind = "an api:// App ID URI" if needs.app_id_uri.lower().startswith("api://") else "the App ID URI"
    return [
        error(
            "app-id-uri",
            f"{kind} ({needs.app_id_uri}) is not the resource MCP clients send ({needs.resource}): Entra refuses a "
            "resource that is not the App ID URI of the app that owns the scopes, so sign-in fails with AADSTS9010010",
            f"set the app registration's Application ID URI to {needs.resource} (`secure-mcp-server entra register` "
            f"does it; the host must be a verified domain of the tenant) and unset {setting(needs, 'APP_ID_URI')}",
        )
    ]


def graph_findings(
    needs: Sequence[AppNeeds],
    credential: TokenCredential,
    graph_url: str,
    verify: ssl.SSLContext | bool = True,
) -> list[Finding]:
    """`registration`, per server: the registration as Graph holds it, judged by `app.entra.check`. A credential that
    cannot get a Graph token is a skip (saying how to enable the check), and Graph refusing or failing the read a
    warning: both are this machine's access, not the server's configuration."""
    try:
        graph = GraphClient(graph_url, credential, verify=verify, timeout=10.0)
    except GraphError as exc:
        return [error("registration", str(exc), "set GRAPH_URL (or --graph-url) to https://graph.microsoft.com")]
    with graph:
        try:
            credential.get_token(graph.scope)
        except ClientAuthenticationError as exc:  # CredentialUnavailableError too: no az login, no identity
            return [skip("registration", f"no Microsoft Graph token ({type(exc).__name__}); {ENABLE_GRAPH}")]
        found: list[Finding] = []
        for one in needs:
            try:
                app = graph.find_application(one)
            except GraphError as exc:  # this machine's access, not the server's configuration: a warning
                message = f"the registration could not be read: {exc}"
                found.append(warn("registration", _labelled(one, message), ENABLE_GRAPH))
                continue
            found += [replace(f, message=_labelled(one, f.message)) for f in registration_findings(app, one)]
        return found


def _labelled(needs: AppNeeds, message: str) -> str:
    return f"{needs.key}: {message}" if needs.key else message
