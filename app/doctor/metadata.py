"""What clients discover, checked from outside: Protected Resource Metadata (RFC 9728), the 401 challenge, and each
authorization server's metadata (RFC 8414, or OpenID discovery). Every document may be junk: each field's type is
checked before it is used."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx2

from app.core.findings import Finding, error, ok, warn
from app.doctor.http import Fetched, fetch

_SERVERS = 5  # authorization servers checked at most
_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*"([^"]*)"')
_START = "start the server here, or check that MCP__RESOURCE_HOST is the URL clients use (scheme, host and port)"
_PROBE = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def prm_url(resource: str) -> str:
    """RFC 9728 §3.1: the well-known name goes between the host and the resource's path."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path.rstrip('/')}"


def prm_findings(http: httpx2.Client, resource: str, required: bool = False) -> list[Finding]:
    """`prm`: the metadata answers at its well-known URL with `resource` equal to `resource`. Unreachable is a warning
    (the server may not run here) unless `required` (black-box, where the URL is the point)."""
    return _prm(http, resource, required)[0]


def _prm(http: httpx2.Client, resource: str, required: bool) -> tuple[list[Finding], list[str]]:
    """The findings, and the authorization servers the metadata names (only strings)."""
    url = prm_url(resource)
    answer = fetch(http, url)
    if not answer.answered:
        status = error if required else warn
        return [status("prm", f"{url} is {answer.problem}", _START)], []
    document = answer.document()
    if answer.status != 200 or document is None:
        return [
            error(
                "prm",
                f"{url} answered {answer.status} without Protected Resource Metadata",
                "check MCP__RESOURCE_HOST and MCP__PATH, and that a proxy in front passes /.well-known/ to the server",
            )
        ], []
    found = document.get("resource")
    if found != resource:
        shown = found[:200] if isinstance(found, str) else type(found).__name__
        return [
            error(
                "prm",
                f"{url} names the resource {shown!r}, not {resource}: clients compare the two exactly and stop",
                "set MCP__RESOURCE_HOST to the URL clients use (scheme, host and port, no path or trailing slash)",
            )
        ], []
    servers = document.get("authorization_servers")
    named = [s for s in servers if isinstance(s, str) and s] if isinstance(servers, list) else []
    if not named:
        return [
            error("prm", f"{url} names no authorization_servers", "check AZUREAD__INSTANCE and AZUREAD__TENANT_ID")
        ], []
    return [ok("prm", f"{url} names {resource} and {len(named)} authorization server(s)")], named


def blackbox_findings(http: httpx2.Client, url: str) -> list[Finding]:
    """`--url`: what an MCP client finds at `url` (the MCP endpoint), without settings or a token."""
    found, servers = _prm(http, url, required=True)
    found += challenge_findings(http, url)
    for server in servers[:_SERVERS]:
        found += auth_server_findings(http, server)
    return found


def challenge_findings(http: httpx2.Client, url: str) -> list[Finding]:
    """`challenge`: an unauthenticated POST answers 401 with `WWW-Authenticate: Bearer … resource_metadata="…"`."""
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    answer = fetch(http, url, method="POST", json=_PROBE, headers=headers)
    if not answer.answered:
        return [error("challenge", f"POST {url} is {answer.problem}", _START)]
    challenge = answer.headers.get("www-authenticate", "")
    if answer.status != 401 or not challenge.lower().startswith("bearer"):
        return [
            error(
                "challenge",
                f"POST {url} without a token answered {answer.status}"
                + ("" if challenge else " without WWW-Authenticate")
                + ": clients find the authorization server through a 401 with WWW-Authenticate: Bearer",
                "check the URL is the MCP endpoint, and that a proxy in front neither answers for the server nor "
                "drops the WWW-Authenticate header",
            )
        ]
    params = dict(_PARAM.findall(challenge))
    metadata = params.get("resource_metadata")
    if not metadata:
        return [
            error(
                "challenge",
                f"the 401 challenge of {url} has no resource_metadata",
                "the server adds it (RFC 9728 §5.1); check that a proxy does not rewrite WWW-Authenticate",
            )
        ]
    if metadata != prm_url(url):
        return [
            warn(
                "challenge",
                f"the 401 challenge points at {metadata[:200]}, not {prm_url(url)}",
                "clients follow the challenge: check MCP__RESOURCE_HOST and MCP__PATH",
            )
        ]
    return [ok("challenge", f"POST {url} without a token answers 401 with Bearer resource_metadata")]


def discovery_urls(issuer: str) -> list[str]:
    """Where clients look for an issuer's metadata, in the MCP spec's order: RFC 8414 and OpenID Connect with the
    path inserted after the well-known name, then OpenID Connect with it appended (Entra's)."""
    parts = urlsplit(issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    urls = [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]
    return list(dict.fromkeys(urls))


def auth_server_findings(http: httpx2.Client, issuer: str) -> list[Finding]:
    """`auth-server`: the issuer's metadata has authorization and token endpoints and PKCE S256."""
    answers: list[Fetched] = []
    for url in discovery_urls(issuer):
        answer = fetch(http, url)
        answers.append(answer)
        if answer.status == 200 and answer.document() is not None:
            return _judge(issuer, url, answer.document() or {})
    tried = "; ".join(f"{a.url}: {a.problem or a.status}" for a in answers)
    return [
        error(
            "auth-server",
            f"no authorization server metadata for {issuer} ({tried})",
            "check the PRM's authorization_servers: AZUREAD__INSTANCE and AZUREAD__TENANT_ID, or the facade "
            "(AUTH_SERVER__ENABLED)",
        )
    ]


def _judge(issuer: str, url: str, document: dict[str, object]) -> list[Finding]:
    missing = [k for k in ("authorization_endpoint", "token_endpoint") if not isinstance(document.get(k), str)]
    if missing:
        return [error("auth-server", f"{url} has no {' or '.join(missing)}", "check the PRM's authorization_servers")]
    found: list[Finding] = []
    methods = document.get("code_challenge_methods_supported")
    if methods is None:
        found.append(
            warn(
                "auth-server",
                f"{url} does not list code_challenge_methods_supported: Entra ID supports PKCE S256 but does not "
                "say so, and clients that follow MCP 2025-11-25 to the letter refuse to sign in without it",
                "for such clients, turn on the authorization-server facade (AUTH_SERVER__ENABLED=true), which lists "
                "S256 (the MCP Python SDK signs in without it)",
            )
        )
    elif not isinstance(methods, list) or "S256" not in methods:
        found.append(
            error(
                "auth-server",
                f"{url} does not support PKCE S256 (code_challenge_methods_supported: {str(methods)[:80]})",
                "MCP clients require S256: use an authorization server that supports it",
            )
        )
    named = document.get("issuer")
    if isinstance(named, str) and named != issuer and "{tenantid}" not in named:
        found.append(
            warn(
                "auth-server",
                f"{url} names the issuer {named[:200]}, not {issuer} (RFC 8414 §3.3: clients may refuse it)",
                "make the PRM's authorization_servers name the issuer exactly",
            )
        )
    return found or [ok("auth-server", f"{issuer}: authorization and token endpoints, PKCE S256")]
