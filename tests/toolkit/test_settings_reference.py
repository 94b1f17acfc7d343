"""The settings reference is generated from `Settings`: every setting is described, and the page is current."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
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


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    sections = {name.split("__")[0] for name, _ in settings_reference.leaf_fields(Settings)}
    for variable in [v for v in os.environ if v.split("__")[0] in sections]:
        monkeypatch.delenv(variable)


def test_a_default_that_depends_on_app_env_is_shown_for_both_and_is_what_each_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where development uses another default than production, the reference says both, and each value shown is
    the effective one (the `Settings` property named by the field), with the defaults it names filled in."""
    _clean_environment(monkeypatch)
    rows = [
        (env, f) for env, f in settings_reference.leaf_fields(Settings) if settings_reference.environment_defaults(f)
    ]
    assert {"LOG_FORMAT", "MCP__RESOURCE_HOST", "TOOLS__LOCK_MODE", "AZUREAD__INSTANCE"} <= {env for env, _ in rows}
    defaults = {env: str(f.default) for env, f in settings_reference.leaf_fields(Settings)}
    development = Settings(app_env="development", _env_file=None)
    production = Settings(
        app_env="production", _env_file=None,
        azuread={"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "client_id": "api-client"},
        mcp={"resource_host": "https://mcp.contoso.com"},
    )  # fmt: skip
    page = settings_reference.render()
    for env, field in rows:
        shown = settings_reference.environment_defaults(field)
        claimed = shown["development"].format_map(defaults)  # `http://{SERVER__HOST}:{SERVER__PORT}` filled in
        assert getattr(development, shown["effective"]) == claimed, env
        if "production" in shown:
            assert getattr(production, shown["effective"]) == shown["production"], env
        assert f"development: `{shown['development']}`" in next(
            line for line in page.splitlines() if f"`{env}`" in line
        )
