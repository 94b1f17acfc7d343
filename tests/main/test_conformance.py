"""The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in .ci/run) against a real server.

The server serves tests/support/everything_tools/ (written only with the public API) through the real authentication:
the suite sends no Authorization header, so a small proxy (tests/support/bearer_proxy.py) adds a token for the run.
Every server scenario, active and pending, runs in the default mode (sessions for handshake-era clients, stateless
2026-07-28), with the `MCP__STATELESS=true` opt-out, and against each path of an app serving two MCP servers; each
scenario is a test, and every one of its checks must pass with no warning. In the opt-out, the scenarios that need a
session are strict expected failures, by design.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app
from tests.support.bearer_proxy import BearerProxy
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, REPO, SUPPORT, TENANT, settings_for

NODE_DIR = REPO / ".ci" / ".node" / "node_modules"
NODE = NODE_DIR / "node" / "bin" / "node"  # Node 22 from npm: the suite needs it (the system node may be older)
SUITE = NODE_DIR / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
# The version .ci/run pins and installs (one place to bump it).
_PIN = re.search(r"^conformance=(\S+)$", (REPO / ".ci" / "run").read_text(), re.MULTILINE)
VERSION = _PIN.group(1) if _PIN else "not pinned in .ci/run"
EVERYTHING = SUPPORT / "everything_tools"
MODES: dict[str, dict[str, Any]] = {"default": {}, "stateless": {"stateless": True}, "first": {}, "second": {}}
# `first` and `second`: one app serving two MCP servers (SERVERS__SECOND__*), the suite run against each path with a
# token for that server; the second serves a copy of the everything tools (a tools folder belongs to one server).
SECOND = {"path": "/second/mcp", "client_id": "5ec0d000-0000-4000-8000-0000000005ec"}
RUN_SECONDS = 120  # the whole suite, one mode: about five seconds here

# MCP__STATELESS=true is the documented opt-out for handshake-era clients: with no session there is no back-channel
# (push sampling and elicitation, log levels, subscriptions, resumable and standalone streams), and the server stops
# advertising what it cannot honour (tests/main/test_capabilities.py). These scenarios need exactly that, so they fail
# there by design; strict, so a change in either the suite or the server shows up.
NEEDS_A_SESSION = "needs a handshake-era session, which MCP__STATELESS=true gives up by design (docs/sessions.md)"
EXPECTED_FAILURES: dict[str, tuple[frozenset[str], str]] = {
    scenario: (frozenset({"stateless"}), NEEDS_A_SESSION)
    for scenario in (
        "logging-set-level",
        "tools-call-with-logging",
        "tools-call-sampling",
        "tools-call-elicitation",
        "elicitation-sep1034-defaults",
        "elicitation-sep1330-enums",
        "server-sse-polling",
        "server-sse-multiple-streams",
        "resources-subscribe",
        "resources-unsubscribe",
    )
}


def _suite_ready() -> bool:
    if not (NODE.exists() and SUITE.exists()):
        return False
    installed = json.loads((SUITE.parent.parent / "package.json").read_text())["version"]
    return bool(installed == VERSION)


def _server_scenarios() -> list[str]:
    """The suite's own list of server scenarios (`conformance list`), so a new scenario in a new version runs too."""
    if not _suite_ready():
        return []
    try:
        listed = subprocess.run([NODE, SUITE, "list"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []  # a broken install: test_the_pinned_suite_is_installed says so
    server_part = listed.split("Client scenarios", 1)[0]
    return [line.split()[1] for line in server_part.splitlines() if line.strip().startswith("- ")]


SCENARIOS = _server_scenarios()


def test_the_pinned_suite_is_installed() -> None:
    if not _suite_ready():
        if os.environ.get("CI"):
            pytest.fail(f"@modelcontextprotocol/conformance@{VERSION} with Node 22 is not in .ci/.node (.ci/run)")
        pytest.skip(f"@modelcontextprotocol/conformance@{VERSION} is not installed in .ci/.node (see .ci/run)")
    assert len(SCENARIOS) >= 30, f"the suite lists {len(SCENARIOS)} server scenarios: is its Node install broken?"


def _run_suite(entra: EntraStandIn, mode: str, out: Path) -> dict[str, list[dict[str, Any]]]:
    """Serve the everything tools behind the token-adding proxy, run every server scenario; checks per scenario."""
    proxy_port, app_port = free_port(), free_port()
    servers, path, audience = {}, "/mcp", CLIENT_ID
    if mode in ("first", "second"):
        shutil.copytree(EVERYTHING, out / "second-tools", ignore=shutil.ignore_patterns("__pycache__"))
        servers = {"second": SECOND | {"tools_dir": str(out / "second-tools")}}
        if mode == "second":
            path, audience = SECOND["path"], SECOND["client_id"]
    settings = settings_for(
        entra,
        proxy_port,  # the resource (and the Host clients send) is the proxy's: it is the server's front door
        tools={"dir": EVERYTHING},
        servers=servers,
        mcp=MODES[mode],
        # The suite opens a connection and a session per scenario (and leaves them to expire), all as one principal:
        # budgets sized for a run, not a person.
        rate_limit={"default": "100000/minute"},
        security={"max_streams_per_principal": 64, "max_sessions_per_principal": 200},
    )
    token = entra.token(scopes="mcp.read", tenant=TENANT, audience=audience)
    with (
        ServerThread(create_app(settings), port=app_port),
        ServerThread(BearerProxy(f"http://127.0.0.1:{app_port}", token), port=proxy_port),
    ):
        run = subprocess.run(
            [NODE, SUITE, "server", "--url", f"http://127.0.0.1:{proxy_port}{path}", "--suite", "all", "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
            check=False,
        )
    found: dict[str, list[dict[str, Any]]] = {}
    longest_first = sorted(SCENARIOS, key=len, reverse=True)  # results are in `server-<scenario>-<timestamp>/`
    for checks in out.glob("server-*/checks.json"):
        scenario = next(s for s in longest_first if checks.parent.name.startswith(f"server-{s}-"))
        found[scenario] = json.loads(checks.read_text())
    assert found, f"the suite wrote no results (exit {run.returncode}): {run.stdout[-2000:]} {run.stderr[-2000:]}"
    return found


@pytest.fixture(scope="module")
def results(entra: EntraStandIn, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each mode's run, on first use: one run of the whole suite per mode serves all of that mode's tests."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def of(mode: str) -> dict[str, list[dict[str, Any]]]:
        if mode not in runs:
            runs[mode] = _run_suite(entra, mode, tmp_path_factory.mktemp(f"conformance-{mode}"))
        return runs[mode]

    return of


def _cases() -> list[Any]:
    cases = []
    for mode in MODES:
        for scenario in SCENARIOS:
            modes, why = EXPECTED_FAILURES.get(scenario, (frozenset(), ""))
            marks = [pytest.mark.xfail(reason=why, strict=True)] if mode in modes else []
            cases.append(pytest.param(mode, scenario, marks=marks, id=f"{mode}-{scenario}"))
    return cases


# The scenarios exercise handshake-era features the SDK marks deprecated for 2026-07-28 (logging, sampling).
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.slow
@pytest.mark.parametrize(("mode", "scenario"), _cases())
def test_scenario_passes_with_no_warning(results: Any, mode: str, scenario: str) -> None:
    checks = results(mode).get(scenario)
    assert checks, f"{scenario} ({mode}) produced no checks"
    bad = [
        f"{c['status']} {c['id']}: {c.get('errorMessage') or c.get('description')}"
        for c in checks
        if c["status"] not in ("SUCCESS", "INFO")
    ]
    assert not bad, f"{scenario} ({mode}):\n" + "\n".join(bad)
