"""The benchmark suite (`bench/`, `make bench`) runs end to end and reports everything it promises.

A smoke run of the real thing: every target served by uvicorn and loaded by wrk, at both protocol revisions, in
one run. It checks what the report contains, never how fast anything was: speed is measured and reported by
`bench/`, not asserted (the results are in bench/RESULTS.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.values import REPO

TARGETS = ("a", "af", "b", "c", "d")
PROTOCOLS = ("2025-11-25", "2026-07-28")
COLUMNS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_mib")

pytestmark = (
    pytest.mark.slow
)  # its tests share one run of the suite, on one worker (ONE_WORKER_MODULES in the top-level conftest.py)

if shutil.which("wrk") is None:
    if os.environ.get("CI"):
        pytest.fail("wrk is not installed: .ci/test-packages installs it", pytrace=False)
    pytest.skip("wrk is not installed (apt-get install wrk)", allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One short run of the whole suite: every target, both protocols, cold start, idle sessions, 1 vs 2 workers."""
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "bench/run.py", "--warm", "0.5", "--measure", "1", "--sessions", "20"]
    command += ["--cold-reps", "1", "--out", str(out)]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    results: dict[str, Any] = json.loads((out / "latest.json").read_text())
    results["markdown"] = (out / "latest.md").read_text()
    if results["skipped"] and not os.environ.get("CI"):  # e.g. no index to install fastmcp from
        pytest.skip(f"bench skipped targets here: {results['skipped']}")
    return results


def test_every_target_answers_the_same_tool_call_at_both_protocols_with_no_error(report: dict[str, Any]) -> None:
    assert report["skipped"] == {}
    assert report["failures"] == []
    points = {(row["target"], row["protocol"]): row for row in report["throughput"]}
    assert set(points) == {(t, p) for t in TARGETS for p in PROTOCOLS}
    for (target, protocol), row in points.items():
        assert row["requests"] > 0, (target, protocol)
        assert row["non_2xx"] == 0 and row["socket_errors"] == 0, (target, protocol, row)
        assert all(row[column] > 0 for column in COLUMNS), (target, protocol, row)
    assert report["durations"]["tool"] == "sync"
    assert "(tools/call `echo`, `def`)" in report["markdown"]


def test_the_report_has_the_ratios_and_the_side_measurements(report: dict[str, Any]) -> None:
    pairs = {(row["pair"], row["protocol"]): row for row in report["ratios"]}
    for protocol in PROTOCOLS:
        for pair in ("(d)/(a)", "(d)/(b)", "(d)/(c)"):
            assert pairs[(pair, protocol)]["rps_ratio"] > 0, (pair, protocol)
            assert f"| {pair} | {protocol} |" in report["markdown"]
    assert report["server_cores"] != report["driver_cores"]  # server and load driver pinned apart
    assert all(report["cold_start"][t]["median_s"] > 0 for t in TARGETS)
    assert all(report["sessions"][t]["sessions"] == 20 for t in ("a", "b", "c", "d"))
    assert all(isinstance(report["sessions"][t]["kib_per_session"], float) for t in ("a", "b", "c", "d"))
    for target in ("a", "d"):
        workers = report["workers"][target]
        assert workers["1"]["rps"] > 0 and workers["2"]["rps"] > 0, target
        assert workers["1"]["non_2xx"] == 0 and workers["2"]["non_2xx"] == 0, target


def test_uv_is_found_where_make_installs_it_when_it_is_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.targets import find_uv

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_uv() is None  # then (c) is skipped with that reason: a failure in CI (report fixture), not a crash
    user_uv = tmp_path / ".local" / "bin" / "uv"
    user_uv.parent.mkdir(parents=True)
    user_uv.write_text("#!/bin/sh\n")
    user_uv.chmod(0o755)
    assert find_uv() == str(user_uv)
