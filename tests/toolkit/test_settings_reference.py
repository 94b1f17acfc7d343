"""The settings reference is generated from `Settings`: every setting is described, and the page is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, Field

from app.settings import Settings
from app.toolkit import settings_reference
from tests.support.values import REPO


def test_every_setting_has_a_description() -> None:
    missing = settings_reference.missing_descriptions(Settings)
    assert not missing, f"add a docstring under each of these fields in app/settings/: {missing}"


def test_a_setting_without_a_description_is_named() -> None:
    """The check above can fail: a field and a section with no docstring are both reported."""

    class Bare(BaseModel):
        port: int = 1

    class Root(BaseModel):
        """Documented root."""

        level: str = Field(default="x", description="A described field.")
        bare: Bare = Bare()

    assert settings_reference.missing_descriptions(Root) == ["BARE__PORT", "BARE__* (section Bare)"]


def test_a_section_keyed_by_name_is_listed_once_with_a_placeholder_for_the_name() -> None:
    """`servers: dict[str, NamedServerSettings]` is `SERVERS__{NAME}__PATH` etc.: each field with its docstring, its
    secrets under their Key Vault names (`servers--{name}--client-secret`, the name the app reads)."""
    page = settings_reference.render()
    assert "## `SERVERS__{NAME}__*`" in page
    assert "| `SERVERS__{NAME}__PATH` | string | required | Where this server's MCP endpoint is served" in page
    assert "| `SERVERS__{NAME}__TOOLS_DIR` | path | unset |" in page
    assert "Secret; Key Vault name `servers--{name}--client-secret`." in page
    assert "| `SERVERS` |" not in page  # not a setting of its own in the general table
    envs = [env for env, _ in settings_reference.leaf_fields(Settings)]
    assert "SERVERS__{NAME}__REQUIRED_SCOPES" in envs and "SERVERS" not in envs


def test_an_undocumented_keyed_section_is_named() -> None:
    class Entry(BaseModel):
        path: str = Field(description="Where.")

    class Root(BaseModel):
        """Documented root."""

        entries: dict[str, Entry] = Field(default_factory=dict, description="Entries by name.")

    assert settings_reference.missing_descriptions(Root) == ["ENTRIES__{NAME}__* (section Entry)"]
    assert [env for env, _ in settings_reference.leaf_fields(Root)] == ["ENTRIES__{NAME}__PATH"]


def test_committed_reference_matches_the_code() -> None:
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert page == settings_reference.render(), "docs/settings.md is stale: run `make docs` and commit it"


def test_reference_shows_each_setting_with_type_default_and_secret_name() -> None:
    page = settings_reference.render()
    for env, _ in settings_reference.leaf_fields(Settings):
        assert f"| `{env}` |" in page
    assert "| `RATE_LIMIT__DEFAULT` | string | `120/minute` |" in page
    assert "| `SERVER__PORT` | integer (>= 1, <= 65535) | `8000` |" in page
    assert "Key Vault name `azuread--client-secret`" in page
    assert "| `TOOLS__DIR` | path | `tools` |" in page  # relative to the repo, not this machine's path


def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    stale = REPO / "docs" / "settings.md"
    out = subprocess.run(
        [sys.executable, "-m", "app.toolkit.settings_reference", "--check", "--output", str(stale)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    other = tmp_path / "settings.md"
    other.write_text("# Settings reference\n\nold\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "app.toolkit.settings_reference", "--check", "--output", str(other)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "is stale" in out.stderr
