"""Target (c): fastmcp with its JWTVerifier (public key), stateless HTTP + JSON responses.

Runs in its own venv (bench/.venvs/fastmcp), never in the project's.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import JWTVerifier

from bench.servers.common import AUDIENCE, ISSUER, SCOPE, STATEFUL, echo_tool, public_key_pem, resource_url

verifier = JWTVerifier(
    public_key=public_key_pem(),
    issuer=ISSUER,
    audience=AUDIENCE,
    algorithm="RS256",
    required_scopes=[SCOPE],
    base_url=resource_url().removesuffix("/mcp"),
)

server = FastMCP("bench-fastmcp", auth=verifier)


server.tool(name="echo")(echo_tool())


app = server.http_app(path="/mcp", stateless_http=not STATEFUL, json_response=True)
