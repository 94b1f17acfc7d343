"""A managed identity endpoint stand-in, in the App Service / Container Apps shape azure-identity speaks to.

`GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=...[&client_id=...]` with the header `X-IDENTITY-HEADER:
{IDENTITY_HEADER}` answers `{"access_token", "expires_on" (epoch seconds, a string), "resource", "token_type",
"client_id"}` (Microsoft's App Service managed identity REST reference). The token is the Entra stand-in's: a managed
identity's token for `api://AzureADTokenExchange`, which the same stand-in verifies as a client assertion.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.entra import EntraStandIn

PATH = "/msi/token"
SYSTEM_ASSIGNED = ("dddddddd-0000-4000-8000-00000000000a", "eeeeeeee-0000-4000-8000-00000000000a")
USER_ASSIGNED = ("dddddddd-0000-4000-8000-00000000000b", "eeeeeeee-0000-4000-8000-00000000000b")


@dataclass
class IdentityStandIn:
    """Serve it with `ServerThread(stand_in.app())`, then set `endpoint` to that server's URL + PATH; `environ()` is
    what the platform sets. Identities are (client id, object id): the system-assigned one, and user-assigned ones."""

    entra: EntraStandIn
    tenant: str
    endpoint: str = ""
    header: str = field(default_factory=lambda: secrets.token_hex(16))
    system_assigned: tuple[str, str] = SYSTEM_ASSIGNED
    user_assigned: list[tuple[str, str]] = field(default_factory=lambda: [USER_ASSIGNED])
    lifetime: int = 86400
    failing: bool = False  # answers 500, as the endpoint does when the platform's identity is broken
    requests: list[dict[str, str]] = field(default_factory=list)  # each request's query
    # Resources besides token exchange it issues app-only tokens for (Microsoft Graph's stand-in, for `entra register`).
    resources: set[str] = field(default_factory=set)

    def environ(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}

    def app(self) -> Starlette:
        async def token(request: Request) -> Response:
            query = dict(request.query_params)
            self.requests.append(query)
            if request.headers.get("x-identity-header") != self.header:
                return JSONResponse({"statusCode": 401, "message": "Unauthorized"}, status_code=401)
            if self.failing:  # retry-after-ms: azure-core retries 3 times, without seconds of back-off here
                body = {"statusCode": 500, "message": "An unexpected error occured"}
                return JSONResponse(body, status_code=500, headers={"retry-after-ms": "10"})
            if query.get("api-version") != "2019-08-01" or not query.get("resource"):
                return JSONResponse({"statusCode": 400, "message": "api-version and resource required"}, 400)
            identity = self._identity(query)
            if identity is None:
                return JSONResponse({"statusCode": 400, "message": "No managed identity matches"}, status_code=400)
            client_id, object_id = identity
            if query["resource"] in self.resources:
                access = self.entra.app_token(
                    tenant=self.tenant, audience=query["resource"], roles=[], app_id=client_id
                )
            elif query["resource"] != "api://AzureADTokenExchange":
                return JSONResponse({"statusCode": 400, "message": "only the token-exchange resource here"}, 400)
            else:
                access = self.entra.exchange_token(
                    tenant=self.tenant, object_id=object_id, client_id=client_id, lifetime=self.lifetime
                )
            expires_on = int(time.time()) + self.lifetime
            body = {"access_token": access, "expires_on": str(expires_on), "resource": query["resource"],
                    "token_type": "Bearer", "client_id": client_id}  # fmt: skip
            return JSONResponse(body)

        return Starlette(routes=[Route(PATH, token)])

    def _identity(self, query: dict[str, str]) -> tuple[str, str] | None:
        wanted = query.get("client_id")
        if wanted is None:
            return self.system_assigned
        return next((one for one in self.user_assigned if one[0] == wanted), None)
