"""The registration checks: does an application, as Microsoft Graph returns it, hold what one server needs? Pure: the
doctor reads the application, `entra register`'s tests use the same checks to prove what it wrote."""

from __future__ import annotations

from typing import Any

from app.core.findings import Finding, error, ok, warn
from app.entra.manifest import permissions
from app.entra.needs import VSCODE_CLIENT_ID, AppNeeds

REGISTER = "run `secure-mcp-server entra register`"


def registration_findings(app: dict[str, Any] | None, needs: AppNeeds) -> list[Finding]:
    """One finding per check (`app-registration`, `app-id-uri`, `scopes`, `roles`, `token-version`, `vscode`,
    `redirect-uris`); only `app-registration` when there is no application."""
    if app is None:
        where = f"the client id {needs.client_id}" if needs.client_id else f"the App ID URI {needs.resource}"
        return [error("app-registration", f"{needs.display_name}: no app registration with {where}", REGISTER)]
    found = [ok("app-registration", f"{needs.display_name}: app registration {app.get('appId')}")]
    found.append(_app_id_uri(app, needs))
    found += _permissions(app, "scope", "scopes", "scope", [p.value for p in needs.scopes])
    found += _permissions(app, "role", "roles", "app role", [p.value for p in needs.roles])
    version = (app.get("api") or {}).get("requestedAccessTokenVersion")
    if version == 2:
        found.append(ok("token-version", "api.requestedAccessTokenVersion is 2 (v2 tokens)"))
    else:
        found.append(
            warn(
                "token-version",
                f"api.requestedAccessTokenVersion is {'null' if version is None else version}: Entra issues v1 tokens "
                "for this app (refused when AZUREAD__ACCEPT_V1=false)",
                f"set it to 2; {REGISTER}",
            )
        )
    found += _vscode(app, needs)
    found += _redirects(app, needs)
    return found


def _app_id_uri(app: dict[str, Any], needs: AppNeeds) -> Finding:
    uris = [str(uri) for uri in app.get("identifierUris") or []]
    if needs.resource in uris:
        return ok("app-id-uri", f"the App ID URI is {needs.resource}")
    message = f"identifierUris {uris or '[]'} lacks {needs.resource}, the resource URL MCP clients send"
    if any(uri.startswith("api://") for uri in uris):
        message += (
            "; with an api:// App ID URI Entra refuses their sign-in (AADSTS9010010: the resource is not the "
            "App ID URI)"
        )
    return error("app-id-uri", message, f"add {needs.resource} to identifierUris (a verified domain); {REGISTER}")


def _permissions(app: dict[str, Any], kind: str, check: str, label: str, needed: list[str]) -> list[Finding]:
    have = {item.get("value"): item for item in permissions(app, kind)}
    missing = [value for value in needed if value not in have]
    disabled = [value for value in needed if value in have and have[value].get("isEnabled") is False]
    found = []
    if missing:
        found.append(error(check, f"{label}s the tools need are missing: {', '.join(missing)}", REGISTER))
    if disabled:
        found.append(error(check, f"{label}s the tools need are disabled: {', '.join(disabled)}", REGISTER))
    if not found:
        found.append(ok(check, f"every {label} the tools need is there ({len(needed)})"))
    return found


def _vscode(app: dict[str, Any], needs: AppNeeds) -> list[Finding]:
    if not needs.scopes:
        return []
    ids = {item.get("value"): item.get("id") for item in permissions(app, "scope")}
    clients = (app.get("api") or {}).get("preAuthorizedApplications") or []
    granted = {i for a in clients if a.get("appId") == VSCODE_CLIENT_ID for i in a.get("delegatedPermissionIds") or []}
    missing = [p.value for p in needs.scopes if ids.get(p.value) is None or ids[p.value] not in granted]
    if not missing:
        return [ok("vscode", "VS Code is pre-authorized for every scope")]
    return [
        warn(
            "vscode",
            f"VS Code ({VSCODE_CLIENT_ID}) is not pre-authorized for {', '.join(missing)}: its users see a consent "
            "prompt, or cannot sign in where user consent is off",
            f"{REGISTER} (or pre-authorize it under Expose an API)",
        )
    ]


def _redirects(app: dict[str, Any], needs: AppNeeds) -> list[Finding]:
    if not needs.redirect_uris:
        return []
    have = set((app.get("web") or {}).get("redirectUris") or [])
    missing = [uri for uri in needs.redirect_uris if uri not in have]
    if missing:
        return [
            error(
                "redirect-uris",
                f"web.redirectUris lacks the sign-in callback {', '.join(missing)}: Entra refuses its sign-ins",
                REGISTER,
            )
        ]
    return [ok("redirect-uris", "the sign-in callbacks (the facade's, the connect page's) are web redirect URIs")]
