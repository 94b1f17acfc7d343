"""What the facade reads from its configuration: the AUTH_SERVER__* values, as a structural type (no settings import).

The composition root passes the settings section itself, which has these attributes; a test or a second server can
pass any object that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import SecretStr

CALLBACK_PATH = "/oauth/callback"  # where the upstream sends the browser back to the facade


class PreRegistered(Protocol):
    """A client registered ahead of time: its id, the name shown on the consent page, its exact redirect URIs."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_name(self) -> str: ...
    @property
    def redirect_uris(self) -> Sequence[str]: ...


class FacadeOptions(Protocol):
    @property
    def enabled(self) -> bool: ...
    @property
    def consent_seconds(self) -> int: ...
    @property
    def refresh_seconds(self) -> int: ...
    @property
    def clients(self) -> Sequence[PreRegistered]: ...
    @property
    def state_uri(self) -> SecretStr | None: ...
    @property
    def registrations_per_ip(self) -> str: ...
    @property
    def pending_registration_seconds(self) -> int: ...
    @property
    def memory_max_bytes(self) -> int: ...
    @property
    def cimd_max_bytes(self) -> int: ...
    @property
    def cimd_timeout_seconds(self) -> float: ...
    @property
    def cimd_cache_entries(self) -> int: ...
