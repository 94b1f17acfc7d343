"""Target (b): the MCP SDK with a minimal RS256 TokenVerifier (PyJWT, local key)."""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl

from bench.servers.common import AUDIENCE, ISSUER, SCOPE, STATEFUL, echo_tool, public_key_pem, resource_url


class RS256Verifier:
    """Validates signature, exp, iss and aud; scopes come from the `scp` or `scope` claim."""

    def __init__(self, public_key_pem: str) -> None:
        # Parse the PEM once; PyJWT would re-parse a PEM string on every decode.
        key = load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, RSAPublicKey):
            raise TypeError("expected an RSA public key")
        self._key = key

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(token, self._key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
        except jwt.PyJWTError:
            return None
        raw = claims.get("scp", claims.get("scope", ""))
        scopes = raw.split() if isinstance(raw, str) else list(raw)
        return AccessToken(
            token=token,
            client_id=str(claims.get("azp", claims.get("sub", ""))),
            scopes=scopes,
            expires_at=claims.get("exp"),
            subject=claims.get("sub"),
        )


server = MCPServer(
    "bench-sdk-auth",
    log_level="WARNING",
    token_verifier=RS256Verifier(public_key_pem()),
    auth=AuthSettings(
        issuer_url=AnyHttpUrl(ISSUER),
        resource_server_url=AnyHttpUrl(resource_url()),
        required_scopes=[SCOPE],
        validate_token_resource=False,  # the verifier checks `aud` itself
    ),
)


server.tool(name="echo")(echo_tool())


app = server.streamable_http_app(streamable_http_path="/mcp", stateless_http=not STATEFUL, json_response=True)
