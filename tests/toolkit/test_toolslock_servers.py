"""`python -m app.toolkit.toolslock write|check --server KEY` (`make tools-lock SERVER=KEY`): that server's lock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.values import REPO, SUPPORT


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
def test_write_and_check_use_the_named_servers_folder_and_lock(tmp_path: Path) -> None:
    tools = tmp_path / "servers" / "finance" / "tools"
    shutil.copytree(SUPPORT / "two_servers" / "finance" / "tools", tools, ignore=shutil.ignore_patterns("__pycache__"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SERVERS__", "TOOLS__", "APP_ENV"))},
        "PYTHONPATH": str(REPO),
        "SERVERS__FINANCE__PATH": "/finance/mcp",
        "SERVERS__FINANCE__TOOLS_DIR": str(tools),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "app.toolkit.toolslock", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert cli("check", "--server", "finance").returncode == 1  # no lock yet
    written = cli("write", "--server", "FINANCE")
    assert written.returncode == 0, written.stderr
    lock = tmp_path / "servers" / "finance" / "tools.lock"
    assert [t["name"] for t in json.loads(lock.read_text())["tools"]] == ["finance_lookup"]
    assert cli("check", "--server", "finance").returncode == 0
    unknown = cli("check", "--server", "payroll")
    assert unknown.returncode == 2 and "no server 'payroll' in SERVERS__*" in unknown.stderr
