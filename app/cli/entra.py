"""`entra register`: each server's Entra app registration as code, through Microsoft Graph.

It reads what each server needs (its catalog's scopes and roles, its URL, the facade's callback), compares it with
the application in the tenant, prints the changes, asks, and applies them; a second run changes nothing. The
Graph token comes from azure-identity's DefaultAzureCredential: `az login` on a laptop, workload identity in CI,
managed identity in Azure (docs/entra.md).
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import fail, load_settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from app.entra.graph import GraphClient
    from app.entra.manifest import Federated
    from app.entra.needs import AppNeeds

entra = typer.Typer(help="Entra ID as code: the app registration each server needs.", no_args_is_help=True)

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@entra.command()
def register(
    server: Annotated[
        str | None, typer.Option("--server", help="only this server (its SERVERS__{KEY} name; '' the first)")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking (needed without a terminal)")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="remove scopes and app roles the catalog no longer has (two steps)")
    ] = False,
    print_only: Annotated[
        bool, typer.Option("--print", help="print each server's manifest as JSON; call nothing, change nothing")
    ] = False,
    graph_url: Annotated[
        str, typer.Option("--graph-url", envvar="GRAPH_URL", help="Microsoft Graph (a national cloud's)")
    ] = "https://graph.microsoft.com",
    no_vscode: Annotated[bool, typer.Option("--no-vscode", help="do not pre-authorize VS Code")] = False,
    managed_identity: Annotated[
        str | None,
        typer.Option("--managed-identity", metavar="OBJECT_ID", help="trust this managed identity (its object id)"),
    ] = None,
    federated_issuer: Annotated[
        str | None, typer.Option("--federated-issuer", metavar="URL", help="trust tokens from this issuer (AKS)")
    ] = None,
    federated_subject: Annotated[
        str | None, typer.Option("--federated-subject", metavar="SUBJECT", help="... with this subject")
    ] = None,
) -> None:
    """Create or update each server's app registration through Microsoft Graph: App ID URI = the server's URL, v2
    tokens, a scope per catalog scope, an app role per catalog role, VS Code pre-authorized."""
    from app.compose.review import app_needs
    from app.compose.startup import exit_on_startup_error
    from app.entra.manifest import desired

    # Read as development: registering needs none of production's checks, and production refuses to load without
    # AZUREAD__CLIENT_ID, which the first run is here to create.
    settings = load_settings(app_env="development")
    tenant = settings.azuread.tenant_id
    if not tenant and not print_only:
        fail(
            "entra register: no tenant (AZUREAD__TENANT_ID): the dev issuer is not Entra ID. Set AZUREAD__TENANT_ID "
            "and MCP__RESOURCE_HOST, or use --print"
        )
    with exit_on_startup_error():
        if server is not None:
            settings.served_one(server.lower())
        needs = app_needs(settings, None if server is None else server.lower())
    federated = _federated(settings.azuread.instance, tenant, managed_identity, federated_issuer, federated_subject)
    if print_only:
        manifests = [desired(one, vscode=not no_vscode, federated=federated) for one in needs]
        for warning in (w for m in manifests for w in m.warnings):
            typer.echo(f"! {warning}", err=True)
        typer.echo(json.dumps([m.printable() for m in manifests], indent=2))
        return
    for one in needs:
        if not one.resource.startswith("https://"):
            fail(
                f"entra register: {one.display_name}'s URL {one.resource} is not https: Entra takes it as the App ID "
                "URI only on a verified domain. Set MCP__RESOURCE_HOST to the public https origin clients use"
            )
    _register_all(needs, federated, graph_url, tenant, yes=yes, prune=prune, vscode=not no_vscode)


def _register_all(
    needs: list[AppNeeds],
    federated: tuple[Federated, ...],
    graph_url: str,
    tenant: str | None,
    *,
    yes: bool,
    prune: bool,
    vscode: bool,
) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from app.entra.graph import GraphClient, GraphError
    from app.entra.manifest import MULTI_TENANT

    try:
        with GraphClient(graph_url, _credential(), tenant_id=None if tenant in MULTI_TENANT else tenant) as graph:
            for one in needs:
                _register_one(graph, one, federated, tenant, yes=yes, prune=prune, vscode=vscode)
    except GraphError as exc:
        fail(f"entra register: {exc}")
    except ClientAuthenticationError as exc:  # CredentialUnavailableError too
        fail(f"entra register: no Microsoft Graph token ({type(exc).__name__}): {_first_line(exc)}")


def _register_one(
    graph: GraphClient,
    needs: AppNeeds,
    federated: tuple[Federated, ...],
    tenant: str | None,
    *,
    yes: bool,
    prune: bool,
    vscode: bool,
) -> None:
    from app.entra.manifest import desired
    from app.entra.plan import apply, plan

    app, found_notes = _locate(graph, needs)
    manifest = desired(needs, vscode=vscode, federated=federated, existing=app)
    has_sp = app is not None and graph.service_principal(app["appId"]) is not None
    credentials = graph.federated_credentials(app["id"]) if app is not None and federated else []
    chosen = plan(manifest, app, service_principal=has_sp, federated=credentials, prune=prune)
    name = f"{needs.display_name} ({needs.resource})"
    typer.echo(f"{name}: " + (f"application {app['appId']}" if app else "no application yet"))
    for line in (*found_notes, *chosen.notes, *chosen.changes):
        typer.echo(f"  {line}")
    if not chosen.changes:
        typer.echo(f"{needs.display_name}: up to date, nothing to change")
        return
    count = len(chosen.changes)
    if not yes:
        if not sys.stdin.isatty():
            fail(f"entra register: {count} changes to apply and no terminal to ask: run it again with --yes")
        if not typer.confirm(f"apply these {count} changes to {needs.display_name}?", default=False):
            typer.echo(f"{needs.display_name}: nothing applied")
            return
    result = apply(chosen, graph)
    typer.echo(f"{needs.display_name}: applied {count} changes (client id {result['appId']})")
    if app is None or found_notes:
        prefix = f"SERVERS__{needs.key.upper()}__" if needs.key else "AZUREAD__"
        typer.echo("set these settings where the server runs:")
        typer.echo(f"  {prefix}CLIENT_ID={result['appId']}")
        if tenant and tenant not in ("organizations", "common"):
            typer.echo(f"  AZUREAD__TENANT_ID={tenant}")


def _locate(graph: GraphClient, needs: AppNeeds) -> tuple[dict[str, Any] | None, list[str]]:
    """The application, and a note when the configured client id names none but the App ID URI finds one."""
    app = graph.find_application(needs)
    if app is not None or not needs.client_id:
        return app, []
    setting = f"SERVERS__{needs.key.upper()}__CLIENT_ID" if needs.key else "AZUREAD__CLIENT_ID"
    for uri in dict.fromkeys((needs.resource, needs.app_id_uri)):
        if (found := graph.application_by_identifier_uri(uri)) is not None:
            return found, [f"! {setting}={needs.client_id} names no application; {found['appId']} has {uri}"]
    return None, [f"! {setting}={needs.client_id} names no application this account can read: a new one is created"]


def _federated(
    instance: str, tenant: str | None, managed: str | None, issuer: str | None, subject: str | None
) -> tuple[Federated, ...]:
    """The federated credentials the options ask for; a bad value is one line and exit 2."""
    from app.entra.manifest import MULTI_TENANT, managed_identity, workload

    found = []
    if managed is not None:
        if not _GUID.fullmatch(managed):
            fail("entra register: --managed-identity takes the managed identity's object id (a GUID)")
        if not tenant or tenant in MULTI_TENANT:
            fail("entra register: --managed-identity needs AZUREAD__TENANT_ID, the tenant that issues its tokens")
        found.append(managed_identity(managed.lower(), instance, tenant))
    if (issuer is None) != (subject is None):
        fail("entra register: --federated-issuer and --federated-subject go together")
    if issuer is not None and subject is not None:
        if not issuer.startswith("https://") or not subject.strip():
            fail("entra register: --federated-issuer is an https URL and --federated-subject is not empty")
        found.append(workload(issuer, subject))
    return tuple(found)


def _credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential  # az login, workload identity (CI, AKS), managed identity

    return DefaultAzureCredential()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else "no detail"
