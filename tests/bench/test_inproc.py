"""`bench/inproc.py` (the in-process cost of each layer of the request path) runs against today's app.

A smoke run per ablation, with counts far too small to mean anything: it checks that the script builds the app as
app/main.py composes it, that every ablation name still swaps a layer that exists, and that it prints its report
line. The script itself stops with an error on any refused request or a failed check call. Never a timing.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bench.inproc import ABLATIONS, CONCURRENCY
from tests.support.values import REPO

# 2 timed batches + the warm-up's 4 of 4 calls per client: 385 requests, over the 120 one principal may send a minute
# by default, so the run also goes through the spreading over several principals.
TINY = ["--reps", "2", "--batch", str(4 * CONCURRENCY)]
REPORT = re.compile(r"p10 \d+ µs/req, median \d+ µs/req")

pytestmark = pytest.mark.slow  # one subprocess per case, each building the whole app


def run_inproc(*args: str) -> str:
    command = [sys.executable, "bench/inproc.py", *TINY, *args]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return run.stdout


@pytest.mark.parametrize("ablate", ABLATIONS)
def test_each_ablation_swaps_a_layer_of_todays_app_and_reports(ablate: str) -> None:
    out = run_inproc("--target", "d", "--ablate", ablate)
    line = next(line for line in out.splitlines() if line.startswith(f"(d) 2026-07-28 without {ablate}: "))
    assert REPORT.search(line), out


@pytest.mark.parametrize("target", ["d", "a"])
@pytest.mark.parametrize("protocol", ["2026-07-28", "2025-11-25"])
def test_the_whole_app_and_the_bare_sdk_report_at_each_protocol(target: str, protocol: str) -> None:
    out = run_inproc("--target", target, "--protocol", protocol)
    line = next(line for line in out.splitlines() if line.startswith(f"({target}) {protocol}: "))
    assert REPORT.search(line), out


def test_an_unknown_ablation_is_refused_by_name() -> None:
    command = [sys.executable, "bench/inproc.py", "--ablate", "audit,nosuchlayer"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert "unknown ablation(s): nosuchlayer" in run.stderr
