"""A taken dev-issuer port (DEV_ISSUER__PORT) stops `uvicorn app.main:app` and `python -m app` with one line naming the
port and the setting, and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import free_port
from tests.support.values import REPO


def _start(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__", "KEYVAULT__", "DEV_ISSUER__", "SERVER__"))
    }
    return subprocess.run(
        command,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["uvicorn app.main:app", "python -m app"])
def test_a_taken_dev_issuer_port_is_one_line_naming_the_port_and_the_setting(tmp_path: Path, entry: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "APP_ENV": "development",
            "DEV_ISSUER__PORT": str(port),
            "DEV_ISSUER__KEY_DIR": str(tmp_path / "dev"),
            "TOOLS__DIR": str(REPO / "tools"),
            "TOOLS__LOCK_MODE": "off",
            "SERVER__PORT": str(free_port()),
        }
        arguments = ["uvicorn", "app.main:app", "--port", "0"] if entry.startswith("uvicorn") else ["app"]
        result = _start([sys.executable, "-m", *arguments], env, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"configuration error: the dev issuer cannot listen on 127.0.0.1:{port} (address in use); "
        "set DEV_ISSUER__PORT to a free port, or DEV_ISSUER__EMBEDDED=false to use one already running\n"
    )
