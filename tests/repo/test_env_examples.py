"""`.env.example` (development) and `production.env.example` cannot drift from `Settings`: the first names every
setting and nothing else, each set line at its default; the second starts in production, holds exactly what
production refuses to start without, and starts once those are filled in."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_invalid
from app.toolkit.settings_reference import KEY, leaf_fields
from tests.support.values import REPO

LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def _lines(path: Path) -> list[tuple[bool, str, str]]:
    """(commented out, name, value) of every `NAME=value` line, commented or not."""
    found = []
    for line in path.read_text().splitlines():
        if match := LINE.match(line.strip()):
            found.append((match["comment"] is not None, match["name"], match["value"]))
    return found


def _setting(name: str, settings: list[str]) -> str | None:
    """The reference name `name` stands for (`SERVERS__HR__PATH` is `SERVERS__{NAME}__PATH`), or None."""
    for known in settings:
        pattern = re.escape(known).replace(re.escape(KEY), "[A-Z0-9_]+")
        if re.fullmatch(pattern, name):
            return known
    return None


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from this process's environment: the files alone are read."""
    names = {name.split("__")[0] for name, _ in leaf_fields(Settings)}
    for variable in list(os.environ):
        if variable.split("__")[0] in names:
            monkeypatch.delenv(variable)


def test_env_example_names_every_setting_and_only_settings() -> None:
    settings = [name for name, _ in leaf_fields(Settings)]
    named = [name for _, name, _ in _lines(REPO / ".env.example")]
    # OTEL_* are OpenTelemetry's own variables, named in a comment: the SDK reads them, not Settings.
    unknown = [name for name in named if _setting(name, settings) is None and not name.startswith("OTEL_")]
    missing = [known for known in settings if not any(_setting(name, [known]) for name in named)]
    assert not unknown, f".env.example names variables that are no settings: {unknown}"
    assert not missing, f".env.example lacks these settings (add them, set to the default or commented): {missing}"


@pytest.mark.usefixtures("clean_environment")
def test_every_set_line_of_env_example_is_the_default() -> None:
    """Loaded as a developer's `.env`, the file changes nothing but APP_ENV: it documents the defaults."""
    from_file = Settings(_env_file=REPO / ".env.example")
    defaults = Settings(app_env="development", _env_file=None)
    assert from_file.app_env == "development"
    differ = {key for key, value in from_file.model_dump().items() if value != defaults.model_dump()[key]}
    assert not differ, f".env.example sets these away from their defaults: {sorted(differ)}"


@pytest.mark.usefixtures("clean_environment")
def test_production_env_example_holds_what_production_needs(tmp_path: Path) -> None:
    path = REPO / "production.env.example"
    lines = _lines(path)
    set_lines = [(name, value) for commented, name, value in lines if not commented]
    assert set_lines[0] == ("APP_ENV", "production")
    settings = [name for name, _ in leaf_fields(Settings)]
    assert not [name for _, name, _ in lines if _setting(name, settings) is None]
    required = [name for name, _ in set_lines[1:]]
    # As shipped: refused, naming exactly the values to fill in, and each is one production cannot start without.
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=path)
    message = describe_invalid(refused.value)
    assert f"production mode needs {', '.join(required)}" in message
    # Filled in: production starts (the commented lines are optional).
    filled = {"AZUREAD__TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "AZUREAD__CLIENT_ID": "api-client"}
    filled["MCP__RESOURCE_HOST"] = "https://mcp.contoso.com"
    assert set(filled) == set(required)
    text = path.read_text()
    for name, value in filled.items():
        text = text.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    (tmp_path / "production.env").write_text(text)
    started = Settings(_env_file=tmp_path / "production.env")
    assert started.app_env == "production" and started.resource == "https://mcp.contoso.com/mcp"
    assert started.log_style == "json" and started.tools_lock_mode == "enforce"
