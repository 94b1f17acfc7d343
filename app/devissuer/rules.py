"""The dev issuer's authorization requests, held to the rules Entra holds a pre-registered public client to.

A request names the one public client (DEV_ISSUER__CLIENT_ID), a loopback redirect URI (RFC 8252, any port) or one
of VS Code's two hosted redirect URIs, PKCE with S256 (plain or missing is refused before any code exists), scopes of
one app's App ID URI, and optionally RFC 8707 `resource`, which must be that App ID URI, as at Entra (AADSTS9010010
otherwise).

The tenant has one app per MCP server (config.py's `DevApp`): the scopes' App ID URI says which app a request is
for, else its `resource`, else it is the first. Scopes of two apps in one request are refused, as at Entra. The
public client may sign in for any app; the facade's client id for an app (AUTH_SERVER__ENABLED) for that app only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.auth.oauth_errors import OAuthError, single_params
from app.auth.resource import OIDC_SCOPES
from app.authserver.protocol import PKCE_CHALLENGE
from app.core.hosts import is_loopback_host
from app.devissuer.config import DevApp

# The authorization-request parameters the sign-in form carries back, exactly as the client sent them.
REQUEST_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "nonce",  # OpenID Connect: echoed in the ID token
)
_SCOPE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,120}")
# VS Code's redirect URI when its sign-in cannot listen on loopback (a remote window: SSH, WSL, a dev container, where
# `make run` runs): vscode.dev hands the response on to the VS Code app. VS Code registers exactly these
# (microsoft/vscode, src/vs/base/common/oauth.ts, fetchDynamicRegistration), as a desktop client registered in Entra
# for it would list them; the public client accepts them, compared whole, and the facade's clients never do.
VSCODE_REDIRECT_URIS = ("https://vscode.dev/redirect", "https://insiders.vscode.dev/redirect")


@dataclass(frozen=True)
class DevUser:
    """A test user the sign-in page offers."""

    oid: str
    name: str
    username: str

    @property
    def sub(self) -> str:
        return hashlib.sha256(self.oid.encode()).hexdigest()[:43]


TEST_USERS = (
    DevUser("22222222-2222-4222-8222-222222222222", "Dev User", "dev@localhost"),
    DevUser("44444444-4444-4444-8444-444444444444", "Second User", "second@localhost"),
)


@dataclass(frozen=True)
class Rules:
    """What a request must match: the one public client, and the apps (one per server) it may be for."""

    client_id: str
    apps: tuple[DevApp, ...]

    def confidential(self, client_id: str | None) -> DevApp | None:
        """The app whose own client id this is: the authorization-server facade signing in as it."""
        return next((app for app in self.apps if app.facade_client and app.facade_client[0] == client_id), None)


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorization request."""

    params: dict[str, str]  # the request parameters the form echoes (only those in REQUEST_PARAMS)
    app: DevApp  # the app (server) it is for
    redirect_uri: str
    code_challenge: str
    resource: str | None
    scopes: tuple[str, ...]  # short names of the app's scopes, as requested
    default_scope: bool  # `{app_id_uri}/.default`: everything the server declares
    offline: bool  # `offline_access` requested: a refresh token, as at Entra

    @property
    def state(self) -> str | None:
        return self.params.get("state")


def loopback_redirect(uri: str) -> str:
    """RFC 8252 section 7.3: `http://127.0.0.1:{any port}/path` (or [::1], or localhost, which Entra also allows)."""
    try:
        parts = urlsplit(uri)
        loopback = (
            parts.scheme == "http"
            and is_loopback_host(parts.hostname)
            and (parts.port is not None or not parts.netloc.endswith(":"))
            and parts.username is None
        )
    except ValueError:  # an unbalanced [ in the host, a port that is not a number
        loopback = False
    if not loopback or len(uri) > 2000 or "#" in uri:
        raise OAuthError(
            "invalid_request",
            f"redirect_uri {uri[:200]!r} is not a loopback redirect URI: the dev issuer's public client accepts "
            "http://127.0.0.1:{port}/path, http://[::1]:{port}/path or http://localhost:{port}/path (RFC 8252), and "
            "VS Code's https://vscode.dev/redirect",
        )
    return uri


def check_client(client_id: str | None, rules: Rules) -> None:
    if client_id != rules.client_id and rules.confidential(client_id) is None:
        raise OAuthError(
            "invalid_client" if client_id else "invalid_request",
            f"unknown client_id {str(client_id)[:80]!r}: the dev issuer serves one public client, "
            f"DEV_ISSUER__CLIENT_ID={rules.client_id} (as a client pre-registered in Entra; there is no registration)",
        )


def check_resource(resource: str | None, app: DevApp) -> None:
    """RFC 8707 `resource` against the App ID URI, as Entra compares it (AADSTS9010010 when they differ)."""
    if resource is not None and resource != app.app_id_uri:
        raise OAuthError(
            "invalid_target",
            f"AADSTS9010010: the resource parameter {resource[:200]!r} does not match the Application ID URI of the "
            f"app that owns the requested scopes ({app.app_id_uri!r}); Entra refuses this request the same way. "
            "MCP clients send the server's URL as resource. Fix: make the App ID URI the server's URL: set the app "
            f"registration's Application ID URI to {resource[:200]} and leave AZUREAD__APP_ID_URI unset (its default "
            "is that URL); see docs/tokens.md",
        )


def select_app(resource: str | None, scope: str | None, rules: Rules) -> DevApp:
    """The app a request is for, as Entra finds it: the one whose App ID URI its scopes carry (scopes of two apps are
    refused), which `resource` must then name; with no such scope, the app `resource` names; else the first."""
    owners: dict[str, DevApp] = {}
    for item in (scope or "").split():
        prefixed = [app for app in rules.apps if item.startswith(app.app_id_uri + "/")]
        if prefixed:  # the longest App ID URI that prefixes it (`…/mcp` and `…/mcp/b` may both be App ID URIs)
            owner = max(prefixed, key=lambda app: len(app.app_id_uri))
            owners[owner.app_id_uri] = owner
    if len(owners) > 1:
        raise OAuthError(
            "invalid_scope",
            f"AADSTS28000: the scopes name more than one resource ({', '.join(owners)}); Entra issues a token for "
            "one resource at a time: ask for one server's scopes per request",
        )
    if owners:
        owner = next(iter(owners.values()))
        check_resource(resource, owner)
        return owner
    if resource is None:
        return rules.apps[0]
    named = next((app for app in rules.apps if app.app_id_uri == resource), None)
    if named is not None:
        return named
    if len(rules.apps) == 1:
        check_resource(resource, rules.apps[0])  # the one app's message, with its fix
    uris = ", ".join(repr(app.app_id_uri) for app in rules.apps)
    raise OAuthError(
        "invalid_target",
        f"AADSTS9010010: the resource parameter {resource[:200]!r} does not match the Application ID URI of any app "
        f"of this tenant ({uris}); Entra refuses this request the same way. MCP clients send the server's URL as "
        "resource: each server's App ID URI should be its URL (the default of AZUREAD__APP_ID_URI and "
        "SERVERS__{KEY}__APP_ID_URI); see docs/tokens.md",
    )


def parse_scopes(scope: str | None, app: DevApp) -> tuple[tuple[str, ...], bool, bool]:
    """Requested scopes: (the app's short names, `.default` asked for, `offline_access` asked for)."""
    names: list[str] = []
    default = offline = False
    prefix = app.app_id_uri + "/"
    for item in (scope or "").split():
        if item in OIDC_SCOPES:
            offline = offline or item == "offline_access"
        elif item == prefix + ".default":
            default = True
        elif item.startswith(prefix) and _SCOPE_NAME.fullmatch(item[len(prefix) :]):
            names.append(item[len(prefix) :])
        elif "://" not in item:
            raise OAuthError(
                "invalid_scope",
                f"scope {item[:80]!r} has no App ID URI: Entra reads a bare scope as a Microsoft Graph permission; "
                f"request it as {prefix}{item[:80]} (the form Protected Resource Metadata lists)",
            )
        else:
            raise OAuthError(
                "invalid_scope",
                f"scope {item[:120]!r} is not a scope of this server: its scopes are {prefix}{{scope}} "
                "(AZUREAD__APP_ID_URI; Protected Resource Metadata lists them)",
            )
    if not names and not default:
        raise OAuthError(
            "invalid_scope", f"no scope of this server is requested: ask for {prefix}{{scope}} (see scopes_supported)"
        )
    return tuple(dict.fromkeys(names)), default, offline


def parse_authorization_request(items: Iterable[tuple[str, str]], rules: Rules) -> AuthRequest:
    """Validate every parameter; the sign-in form's POST goes through this again, with what it carried back."""
    params = single_params((k, v) for k, v in items if k in REQUEST_PARAMS)
    check_client(params.get("client_id"), rules)
    asked = params.get("redirect_uri", "")
    public = params.get("client_id") == rules.client_id
    redirect_uri = asked if public and asked in VSCODE_REDIRECT_URIS else loopback_redirect(asked)
    confidential = rules.confidential(params.get("client_id"))
    if confidential is not None and confidential.facade_client and redirect_uri != confidential.facade_client[1]:
        raise OAuthError("invalid_request", "the facade's client redirects only to its own callback")
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code (authorization code with PKCE)")
    if params.get("response_mode", "query") not in ("query", "form_post"):
        raise OAuthError("invalid_request", "response_mode must be query or form_post")
    method, challenge = params.get("code_challenge_method"), params.get("code_challenge")
    if not challenge or not method:
        raise OAuthError("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
    if method != "S256":
        raise OAuthError("invalid_request", f"code_challenge_method {method[:20]!r} is refused: only S256 is allowed")
    if not PKCE_CHALLENGE.fullmatch(challenge):
        raise OAuthError("invalid_request", "code_challenge must be the base64url SHA-256 of the verifier (43 chars)")
    if len(params.get("state", "")) > 2000 or len(params.get("nonce", "")) > 2000:
        raise OAuthError("invalid_request", "state or nonce is longer than 2000 characters")
    resource = params.get("resource")
    app = select_app(resource, params.get("scope"), rules)
    if confidential is not None and confidential is not app:
        raise OAuthError(
            "invalid_client",
            f"AADSTS650057: the client {confidential.audience} is the app of {confidential.server_name}; it may sign "
            f"in for that server only, not for {app.server_name} ({app.app_id_uri})",
        )
    scopes, default, offline = parse_scopes(params.get("scope"), app)
    return AuthRequest(params, app, redirect_uri, challenge, resource, scopes, default, offline)


def expect(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value
