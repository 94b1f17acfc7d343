"""OAuth error responses and parameter reading shared by the dev issuer and the authorization-server facade
(RFC 6749 sections 3.1 and 5.2, RFC 7591 section 3.2.2)."""

from __future__ import annotations

from collections.abc import Iterable


class OAuthError(Exception):
    """`error` and a description a developer can act on; never a code, token or raw caller value beyond a prefix."""

    def __init__(self, error: str, description: str, status: int = 400, retry_after: int = 0) -> None:
        super().__init__(description)
        self.error, self.description, self.status, self.retry_after = error, description, status, retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def single_params(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request parameters as a dict; RFC 6749 section 3.1: a parameter sent twice is an error."""
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            raise OAuthError("invalid_request", f"the parameter {name[:40]!r} is sent more than once")
        params[name] = value
    return params
