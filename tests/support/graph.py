"""A local Microsoft Graph v1.0 stand-in for app registrations: HTTPS on loopback, bearer tokens checked.

Shapes and refusals follow Graph's documentation: `GET /applications(appId='…')`, `GET /applications?$filter=
identifierUris/any(x:x eq '…')`, `POST /applications` (201), `PATCH /applications/{id}` (204; complex properties
merged, collections replaced), `CannotDeleteOrUpdateEnabledEntitlement` for an enabled scope or role changed or
removed in one step, pre-authorization only of scopes that exist, identifier URIs on verified domains only, service
principals by appId, federated identity credentials per application. Errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.entra.needs import AppNeeds, Permission
from tests.support.entra import EntraStandIn

_BY_APP_ID = re.compile(r"/v1\.0/(applications|servicePrincipals)\(appId='([^']*)'\)")
_APP = re.compile(r"/v1\.0/applications/([^/]+)")
_FICS = re.compile(r"/v1\.0/applications/([^/]+)/federatedIdentityCredentials")
_FILTER = re.compile(r"identifierUris/any\(x:x eq '((?:[^']|'')*)'\)")


# Graph's own words for the refusals the stand-in makes.
UNVERIFIED = "Values of identifierUris property must use a verified domain of the organization or its subdomain"
TAKEN = "Another object with the same value for property identifierUris already exists."
ENABLED = "Permission (scope or role) cannot be deleted or updated unless disabled first."
NO_SUCH_SCOPE = "Property PreAuthorizedApplication references a permission that does not exist on the application."
NO_SUCH_APP = "The appId of the service principal does not reference a valid application object."
SAME_NAME = "FederatedIdentityCredential with the same name already exists."


def graph_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass
class GraphStandIn:
    """Serve `app()` over TLS (`serving`); `base` is its origin, which is also the token audience it expects."""

    entra: EntraStandIn | None = None
    base: str = "https://127.0.0.1:0"
    verified_domains: tuple[str, ...] = ("contoso.com",)
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)  # object id -> application
    service_principals: dict[str, dict[str, Any]] = field(default_factory=dict)  # appId -> service principal
    federated: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # app object id -> credentials
    requests: list[str] = field(default_factory=list)  # "METHOD /path"
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every write's JSON body, in order
    forbid: Literal["", "read", "write"] = ""  # answer 403 to writes, or to everything
    tokens: list[str] = field(default_factory=list)  # the bearer tokens presented
    page_size: int = 100  # federated credentials per page (`@odata.nextLink` for the rest)
    next_base: str = ""  # where nextLink points (default: `base`)
    html: bool = False  # answer every request 200 with an HTML page (a proxy's sign-in page, not Graph)

    @property
    def writes(self) -> list[str]:
        return [r for r in self.requests if not r.startswith("GET ")]

    def reset(self) -> None:
        for store in (self.applications, self.service_principals, self.federated):
            store.clear()
        self.requests.clear()
        self.bodies.clear()
        self.tokens.clear()
        self.forbid, self.page_size, self.next_base, self.html = "", 100, "", False

    def add_application(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an application as Graph would create it (defaults filled in); returns it."""
        app = _merge(_blank(), copy.deepcopy(body))
        self.applications[app["id"]] = app
        return app

    def application(self, app_id: str) -> dict[str, Any]:
        return next(a for a in self.applications.values() if a["appId"] == app_id)

    # ---- the app ---------------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        async def dispatch(request: Request) -> Response:
            path, method = request.url.path, request.method
            self.requests.append(f"{method} {path}")
            if (denied := self._gate(request)) is not None:
                return denied
            if self.html:
                return Response("<html>sign in to the proxy</html>", media_type="text/html")
            body = await request.json() if method in ("POST", "PATCH") else {}
            if method != "GET":
                self.bodies.append(body)
            if (found := _BY_APP_ID.fullmatch(path)) and method == "GET":
                return self._by_app_id(found[1], found[2])
            if path == "/v1.0/applications":
                return self._create(body) if method == "POST" else self._filter(request.query_params.get("$filter"))
            if path == "/v1.0/servicePrincipals" and method == "POST":
                return self._create_service_principal(body)
            if found := _FICS.fullmatch(path):
                return self._federated(found[1], method, body, int(request.query_params.get("$skiptoken", "0")))
            if (found := _APP.fullmatch(path)) and method in ("GET", "PATCH"):
                return self._patch(found[1], body) if method == "PATCH" else self._get(found[1])
            return graph_error(400, "BadRequest", f"Resource not found for the segment in {path}.")

        return Starlette(routes=[Route("/{rest:path}", dispatch, methods=["GET", "POST", "PATCH", "DELETE"])])

    def _gate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token or not self._valid(token):
            return graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
        self.tokens.append(token)
        if self.forbid == "read" or (self.forbid == "write" and request.method != "GET"):
            return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        return None

    def _valid(self, token: str) -> bool:
        if self.entra is None:
            return True
        for key in self.entra.keys:
            try:
                jwt.decode(token, key.private.public_key(), algorithms=["RS256"], audience=self.base)
                return True
            except jwt.PyJWTError:
                continue
        return False

    def _by_app_id(self, collection: str, app_id: str) -> Response:
        found = (
            next((a for a in self.applications.values() if a["appId"] == app_id), None)
            if collection == "applications"
            else self.service_principals.get(app_id)
        )
        if found is None:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{app_id}' does not exist.")
        return JSONResponse(found)

    def _get(self, object_id: str) -> Response:
        if object_id not in self.applications:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{object_id}' does not exist.")
        return JSONResponse(self.applications[object_id])

    def _filter(self, expression: str | None) -> Response:
        match = _FILTER.fullmatch(expression or "")
        if match is None:
            return graph_error(400, "Request_UnsupportedQuery", "Unsupported query.")
        uri = match[1].replace("''", "'")
        return JSONResponse({"value": [a for a in self.applications.values() if uri in a["identifierUris"]]})

    def _create(self, body: dict[str, Any]) -> Response:
        if not body.get("displayName"):
            return graph_error(400, "Request_BadRequest", "displayName is required.")
        refused = self._refuse(None, body)
        if refused is not None:
            return refused
        return JSONResponse(self.add_application(body), status_code=201)

    def _patch(self, object_id: str, body: dict[str, Any]) -> Response:
        app = self.applications.get(object_id)
        if app is None:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{object_id}' does not exist.")
        refused = self._refuse(app, body)
        if refused is not None:
            return refused
        self.applications[object_id] = _merge(app, copy.deepcopy(body))
        return Response(status_code=204)

    def _refuse(self, app: dict[str, Any] | None, body: dict[str, Any]) -> Response | None:
        """Graph's refusals of an application body (create when `app` is None)."""
        for uri in body.get("identifierUris", []):
            host = urlsplit(uri).hostname or ""
            if uri.startswith(("https://", "http://")) and not any(
                host == d or host.endswith("." + d) for d in self.verified_domains
            ):
                return graph_error(400, "HostNameNotOnVerifiedDomain", f"{UNVERIFIED}: '{uri}'")
            taken = [a for a in self.applications.values() if a is not app and uri in a["identifierUris"]]
            if taken:
                return graph_error(400, "Request_BadRequest", TAKEN)
        api = body.get("api", {})
        old = app or _blank()
        for new, before in (
            (api.get("oauth2PermissionScopes"), old["api"]["oauth2PermissionScopes"]),
            (body.get("appRoles"), old["appRoles"]),
        ):
            if new is None:
                continue
            by_id = {item["id"]: item for item in new}
            for item in before:
                after = by_id.get(item["id"])
                if item.get("isEnabled") and (after is None or {**after, "isEnabled": True} != item):
                    return graph_error(400, "CannotDeleteOrUpdateEnabledEntitlement", ENABLED)
        existing = {s["id"] for s in old["api"]["oauth2PermissionScopes"]}
        for client in api.get("preAuthorizedApplications", []):
            if not set(client.get("delegatedPermissionIds", [])) <= existing:
                return graph_error(400, "InvalidValue", NO_SUCH_SCOPE)
        return None

    def _create_service_principal(self, body: dict[str, Any]) -> Response:
        app_id = body.get("appId", "")
        if not any(a["appId"] == app_id for a in self.applications.values()):
            return graph_error(400, "Request_BadRequest", NO_SUCH_APP)
        if app_id in self.service_principals:
            return graph_error(409, "Request_MultipleObjectsWithSameKeyValue", "The service principal already exists.")
        sp = {"id": str(uuid.uuid4()), "appId": app_id, "servicePrincipalType": "Application"}
        self.service_principals[app_id] = sp
        return JSONResponse(sp, status_code=201)

    def _federated(self, object_id: str, method: str, body: dict[str, Any], skip: int) -> Response:
        if object_id not in self.applications:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{object_id}' does not exist.")
        credentials = self.federated.setdefault(object_id, [])
        if method == "GET":
            page: dict[str, Any] = {"value": credentials[skip : skip + self.page_size]}
            if skip + self.page_size < len(credentials):
                path = f"/v1.0/applications/{object_id}/federatedIdentityCredentials"
                page["@odata.nextLink"] = f"{self.next_base or self.base}{path}?$skiptoken={skip + self.page_size}"
            return JSONResponse(page)
        if body.get("audiences") != ["api://AzureADTokenExchange"] or not body.get("issuer") or not body.get("subject"):
            return graph_error(400, "Request_BadRequest", "Invalid federated identity credential.")
        if any(c["name"] == body.get("name") for c in credentials):
            return graph_error(409, "Request_MultipleObjectsWithSameKeyValue", SAME_NAME)
        credential = {"id": str(uuid.uuid4()), **body}
        credentials.append(credential)
        return JSONResponse(credential, status_code=201)


def _blank() -> dict[str, Any]:
    """A new application with the defaults Graph gives one."""
    return {
        "id": str(uuid.uuid4()),
        "appId": str(uuid.uuid4()),
        "displayName": None,
        "identifierUris": [],
        "signInAudience": "AzureADMyOrg",
        "api": {
            "acceptMappedClaims": None,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": None,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "web": {"homePageUrl": None, "logoutUrl": None, "redirectUris": []},
    }


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: complex properties merged recursively, collections and values replaced."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


RESOURCE = "https://mcp.contoso.com/mcp"


def needs_for(
    scopes: tuple[str, ...] = ("notes.read", "notes.write"), roles: tuple[str, ...] = ("notes.read.all",), **values: Any
) -> AppNeeds:
    """A server's needs as app/compose/review.py computes them: at RESOURCE, these scopes and roles."""
    base: dict[str, Any] = {
        "key": "",
        "display_name": "notes-mcp",
        "client_id": None,
        "tenant_id": "72f988bf-0000-4000-8000-000000000001",
        "resource": RESOURCE,
        "app_id_uri": RESOURCE,
        "scopes": tuple(Permission(s, f"Use notes-mcp: tool for {s}") for s in scopes),
        "roles": tuple(Permission(r, f"Use notes-mcp: tool for {r}") for r in roles),
    }
    return AppNeeds(**{**base, **values})
