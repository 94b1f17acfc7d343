"""OAuth error responses the facade sends (RFC 6749 section 5.2, RFC 7591 section 3.2.2)."""

from __future__ import annotations


class OAuthError(Exception):
    """`error` and a description a developer can act on; never a code, token or raw caller value beyond a prefix."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
