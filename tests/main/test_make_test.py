"""`make test` beside `make run`, in one fresh copy of the repository: a developer's server (and its dev issuer, its
`.dev/` keys and its running-issuer record) stays up while the test runner runs tests that use the same checkout's
`make run`, `make token` and `.dev/`, and they pass. (The ports are the other half: under CI every run of the suite
holds `make run`'s default ports as a developer's `make run` would, so a test that used them fails.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_ready
from tests.support.values import REPO

pytestmark = [
    pytest.mark.slow,  # a copy of the repository, its own environment, `make run` and a nested test run
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the repository's git checkout"),
]

# Tests that share what `make run` leaves in the checkout: its server and issuer (make run, make token), `.dev/`.
BESIDE = "tests/main/test_make_run.py::test_make_run_then_make_token_then_tools_list tests/devissuer/test_keys.py"


def _fresh_copy(into: Path) -> Path:
    """The repository's files as a clone has them: tracked and new ones, nothing git ignores (.venv, .dev, .env)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


async def test_make_test_passes_while_make_run_serves_the_same_checkout(tmp_path: Path) -> None:
    root = _fresh_copy(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREAD__", "MCP__", "APP_ENV", "TOOLS__"))}
    env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV")}
    port, issuer_port = free_port(), free_port()
    run = subprocess.Popen(
        ["make", "-s", "run", f"PORT={port}"],
        cwd=root,
        env=env | {"DEV_ISSUER__PORT": str(issuer_port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}", run, timeout=300)  # first run: `make install` builds .venv
        assert (root / ".dev" / f"issuer-{issuer_port}.json").exists()  # the running issuer's record, as make leaves it
        assert (root / ".venv" / "bin" / "secure-mcp-server").exists()  # `make install` put the console script there
        tested = subprocess.run(
            ["make", "test", f"TESTS={BESIDE}", "TEST_WORKERS=2"],
            cwd=root, env=env | {"CI": "1"}, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert run.poll() is None, "make run stopped while the tests ran"
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.communicate(timeout=60)
    summary = tested.stdout.strip().splitlines()[-1:] if tested.stdout.strip() else []
    assert tested.returncode == 0, f"{summary}\n{tested.stdout[-4000:]}\n{tested.stderr[-2000:]}"
    assert " passed" in tested.stdout and " skipped" not in tested.stdout.splitlines()[-1]
