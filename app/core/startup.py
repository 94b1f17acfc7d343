"""The one root of every error that stops startup: the composition root prints `{label}: {message}` and exits 2.

A part that can fail while the server is being built (tools, routes, secrets, Key Vault, telemetry, the audit sink,
the dev issuer) raises a subclass with its own `label`; the message names what is wrong, never a secret's value.
"""

from __future__ import annotations


class StartupError(Exception):
    """The server cannot be built as configured."""

    label = "configuration error"

    def line(self) -> str:
        """The one line printed on stderr."""
        return f"{self.label}: {self}"
