"""OAuth primitives both authorization servers share: this facade and the development issuer (app/devissuer/).

PKCE S256, the no-store headers of every answer, a bounded form body, the authorization response's redirect, an
OAuth error as its JSON answer, and the one-way fingerprint kept in place of a secret. The error type itself and
duplicate-parameter reading are app/auth/oauth_errors.py; the pages' chrome is app/authserver/pages.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.auth.oauth_errors import OAuthError, single_params

MAX_FORM_BYTES = 16 * 1024
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest, unpadded
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 S256: the verifier is well formed and its base64url SHA-256 is the challenge."""
    if not _VERIFIER.fullmatch(verifier):
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return secrets.compare_digest(digest, challenge)


def fingerprint(value: str) -> str:
    """A one-way stand-in for a secret a server must recognise later but never keep (a code, a cookie, a refresh
    token)."""
    return hashlib.sha256(value.encode()).hexdigest()


async def read_body(request: Request, limit: int = MAX_FORM_BYTES) -> bytes:
    """The request body, refused (400) once it is longer than `limit` bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OAuthError("invalid_request", f"the request body is larger than {limit} bytes")
    return body


async def read_form_items(request: Request, max_fields: int) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body of at most MAX_FORM_BYTES, as (name, value) pairs."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    try:
        return parse_qsl((await read_body(request)).decode(), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the request body is not valid form data") from None


async def read_form(request: Request, max_fields: int = 50) -> dict[str, str]:
    """The form's parameters, each sent once (RFC 6749 section 3.1)."""
    return single_params(await read_form_items(request, max_fields))


def with_query(uri: str, answer: dict[str, str]) -> str:
    """The authorization response's location: `answer` added to the client's redirect URI's own query."""
    return uri + ("&" if "?" in uri else "?") + urlencode(answer)


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL, as CSP's `form-action` names a target."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def error_json(error: OAuthError) -> JSONResponse:
    """An OAuth error as RFC 6749 section 5.2 answers it: JSON, never stored; Retry-After when it says when."""
    retry = {"retry-after": str(error.retry_after)} if error.retry_after else {}
    return JSONResponse(error.body(), status_code=error.status, headers=NO_STORE | retry)
