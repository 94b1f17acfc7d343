"""The Tasks benchmark (`bench/tasks.py`, `make bench-tasks`) runs end to end against this server at its defaults and
reports every point it promises.

A smoke run of the real thing (uvicorn, the dev issuer's tokens, wrk), briefly and on 2 connections, far from any cap.
It checks what the report contains, never how fast anything was: speed is measured and reported by `bench/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.values import REPO

pytestmark = pytest.mark.slow

if shutil.which("wrk") is None:
    if os.environ.get("CI"):
        pytest.fail("wrk is not installed: .ci/test-packages installs it", pytrace=False)
    pytest.skip("wrk is not installed (apt-get install wrk)", allow_module_level=True)


def test_the_tasks_bench_reports_polls_creation_and_the_synchronous_call_all_answered(tmp_path: Path) -> None:
    command = [sys.executable, "bench/tasks.py", "--warmup", "0", "--duration", "1", "--connections", "2"]
    run = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "tasks-latest.json").read_text())
    assert results["failures"] == []
    assert set(results["points"]) == {"sync", "create", "poll"}
    for name, row in results["points"].items():
        assert row["requests"] > 0 and row["cpu_us_per_req"] > 0, (name, row)
        assert row["non_2xx"] == 0 and row["statuses"] == {}, (name, row)
    assert results["points"]["create"]["completion"]["tasks"] > 0
    assert results["points"]["create"]["completion"]["refused"] == 0
    assert {ratio["pair"] for ratio in results["ratios"]} == {"create / sync", "poll / sync"}
    assert results["task_caps"] == [10, 100]  # the defaults, never lifted
    report = (tmp_path / "tasks-latest.md").read_text()
    assert "| `poll`: tasks/get of a completed task |" in report
