"""A misspelled setting stops startup with one line naming it and the closest valid name, from the environment and
from `.env`; other programs' variables are not ours, and ALLOW_UNKNOWN_SETTINGS opts out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_invalid
from tests.support.values import REPO


def _refusal(**kwargs: object) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(app_env="development", **kwargs)
    return describe_invalid(refused.value)


def test_a_misspelled_setting_in_the_environment_names_the_closest_valid_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZUREAD__TENANTID", "contoso")
    monkeypatch.setenv("DEV_ISSUER__PROT", "9000")
    message = _refusal(_env_file=None)
    assert "AZUREAD__TENANTID (in the environment): did you mean AZUREAD__TENANT_ID?" in message
    assert "DEV_ISSUER__PROT (in the environment): did you mean DEV_ISSUER__PORT?" in message
    assert "contoso" not in message and "9000" not in message  # names, never values


def test_a_misspelled_setting_in_dotenv_is_refused_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("APP_ENV=development\nMCP__SERVER_NAM=notes\n")
    assert "MCP__SERVER_NAM (in .env): did you mean MCP__SERVER_NAME?" in _refusal(_env_file=env_file)


def test_other_programs_variables_are_not_ours_and_the_opt_out_admits_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE_API__BASE_URL", "https://graph.example")  # a tool's own settings: another prefix
    monkeypatch.setenv("MCP_INSPECTOR", "/usr/bin/true")  # one underscore: not a section of ours
    assert Settings(_env_file=None, app_env="development").mcp.server_name
    monkeypatch.setenv("MCP__SHARED_BY_ANOTHER_APP", "1")
    monkeypatch.setenv("ALLOW_UNKNOWN_SETTINGS", "true")
    assert Settings(_env_file=None, app_env="development").allow_unknown_settings


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_python_m_app_prints_one_line_with_the_suggestion(tmp_path: Path) -> None:
    env = {**os.environ, "APP_ENV": "development", "SECURITY__MAX_SESION": "3", "PYTHONPATH": str(REPO)}
    started = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode != 0 and "Traceback" not in started.stderr
    last = started.stderr.strip().splitlines()[-1]
    assert "SECURITY__MAX_SESION (in the environment): did you mean SECURITY__MAX_SESSIONS?" in last
