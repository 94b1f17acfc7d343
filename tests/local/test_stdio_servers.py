"""Local mode serves one named server of an app that declares several: `python -m app stdio --server KEY`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.local.serve import build_local
from app.settings import Settings
from tests.support.values import REPO, SUPPORT

HR_TOOLS, FINANCE_TOOLS = SUPPORT / "two_servers" / "hr", SUPPORT / "two_servers" / "finance" / "tools"


def two_servers(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        app_env="development",
        tools={"dir": HR_TOOLS, "lock_mode": "off"},
        servers={"finance": {"path": "/finance/mcp", "tools_dir": FINANCE_TOOLS}},
        stdio={"data_dir": tmp_path, "allow_plain_cache": True},
    )


def test_the_named_server_is_built_with_its_own_catalog_and_scopes(tmp_path: Path) -> None:
    settings = two_servers(tmp_path)
    first, _, _ = build_local(settings)
    finance, identity, _ = build_local(settings, "finance")
    assert {spec.name for spec in first.catalog.of("tool")} == {"hr_lookup", "hr_admin"}
    assert {spec.name for spec in finance.catalog.of("tool")} == {"finance_lookup"}
    assert finance.server.path == "/finance/mcp" and finance.key == "finance"
    # The user signs in for this server's scopes only: `{its App ID URI}/{scope}`.
    assert identity.scopes == [f"{finance.server.app_id_uri}/notes.read"]
    assert finance.server.app_id_uri != first.server.app_id_uri


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_an_unknown_server_is_one_line_on_stderr_and_exit_2(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "APP_ENV": "development",
        "TOOLS__DIR": str(HR_TOOLS),
        "SERVERS__FINANCE__PATH": "/finance/mcp",
        "SERVERS__FINANCE__TOOLS_DIR": str(FINANCE_TOOLS),
        "STDIO__DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "stdio", "--server", "payroll"],
        cwd=tmp_path,
        env=env,
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == b""
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last == "servers error: no server 'payroll' in SERVERS__* (the servers declared: finance)"
