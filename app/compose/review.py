"""What each server's app registration must hold, read from its catalog and settings without serving anything: the
input of `entra register` and of the doctor's registration checks (app/entra/)."""

from __future__ import annotations

from collections import defaultdict

from app.api.discovery import discover_routes
from app.auth.resource import NO_ROUTES
from app.authserver.options import CALLBACK_PATH
from app.catalog.discovery import discover
from app.catalog.registry import Catalog
from app.compose.resource import resource_server
from app.connect import CALLBACK_PATH as CONNECT_CALLBACK
from app.entra.needs import AppNeeds, Permission
from app.settings import Settings

_NAMED = 6  # at most this many names in a description, then "and N more"


def app_needs(settings: Settings, key: str | None = None) -> list[AppNeeds]:
    """Every server's needs, in `settings.served()` order (`key`: that server's alone). Imports the tools and routes,
    as the lock command does; raises their discovery errors."""
    routes = discover_routes(settings.routes.dir)
    needs = []
    for index, one in enumerate(settings.served()):
        if key is not None and one.key != key:
            continue
        catalog = discover(one.tools_dir)
        first = index == 0
        server = resource_server(settings, catalog, routes.requirement if first else NO_ROUTES, one)
        uses = _uses(catalog, one.required_scopes, one.required_roles, routes.scopes if first else set())
        role_uses = _uses(catalog, (), one.required_roles, routes.roles if first else set(), roles=True)
        configured = settings.azuread.client_id if first else settings.servers[one.key].client_id
        needs.append(
            AppNeeds(
                key=one.key,
                display_name=one.name,
                client_id=configured or None,
                tenant_id=settings.azuread.tenant_id,
                resource=f"{settings.resource_host}{one.path}",
                app_id_uri=one.app_id_uri,
                scopes=tuple(Permission(s, _describe(s, uses[s], one.name)) for s in server.declared_scopes()),
                roles=tuple(Permission(r, _describe(r, role_uses[r], one.name)) for r in server.declared_roles()),
                redirect_uris=(
                    *((settings.auth_server_issuer + CALLBACK_PATH,) if settings.auth_server.enabled else ()),
                    *((settings.resource_host + CONNECT_CALLBACK,) if settings.connect.enabled else ()),
                ),
            )
        )
    return needs


def _uses(
    catalog: Catalog, required: tuple[str, ...], required_roles: tuple[str, ...], routes: set[str], roles: bool = False
) -> defaultdict[str, list[str]]:
    """For each scope (or role): what needs it, as people read it (`tool notes_add`, `the HTTP routes`)."""
    uses: defaultdict[str, list[str]] = defaultdict(list)
    for name in required_roles if roles else required:
        uses[name].append("every call")
    for spec in catalog.specs:
        for name in spec.requirement.roles if roles else spec.requirement.scopes:
            uses[name].append(f"{spec.kind} {spec.name}")
    for name in routes:
        uses[name].append("the HTTP routes")
    return uses


def _describe(value: str, uses: list[str], server: str) -> str:
    """The consent text Entra shows: what the permission opens, from the catalog (bounded: Graph caps it)."""
    if not uses:
        return f"Use {server} ({value})"
    named = ", ".join(uses[:_NAMED]) + (f" and {len(uses) - _NAMED} more" if len(uses) > _NAMED else "")
    return f"Use {server}: {named}"[:400]
