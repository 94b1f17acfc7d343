"""The connect page plugged in at the composition root (app/compose/connect.py): off builds nothing; on, each server's
registration needs its callback as a redirect URI, and a store that other workers cannot see is refused."""

from __future__ import annotations

import pytest

from app.authserver.store import MemoryStore
from app.compose.connect import ConnectConfigError, connect_links
from app.compose.review import app_needs
from app.settings import Settings


def _settings(stateless: bool = False, **connect: object) -> Settings:
    return Settings(_env_file=None, app_env="development", connect=connect, mcp={"stateless": stateless})


def test_off_builds_nothing_and_needs_no_redirect_uri() -> None:
    assert connect_links(_settings()) is None
    assert [n.redirect_uris for n in app_needs(_settings())] == [()]


def test_on_registers_its_callback_and_keeps_links_in_memory_on_one_worker() -> None:
    settings = _settings(enabled=True)
    links = connect_links(settings)
    assert links is not None and isinstance(links.store, MemoryStore)
    assert links.callback == f"{settings.resource_host}/connect/callback"
    assert [n.redirect_uris for n in app_needs(settings)] == [(f"{settings.resource_host}/connect/callback",)]


def test_a_store_other_workers_cannot_see_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConnectConfigError, match="RATE_LIMIT__STORAGE_URI"):
        connect_links(_settings(enabled=True, store="redis"))
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with pytest.raises(ConnectConfigError, match="4 workers"):
        connect_links(_settings(stateless=True, enabled=True))
