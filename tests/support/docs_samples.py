"""Checks of the docs' samples of what the server answers or prints (tests/repo/test_docs_examples.py): each is
compared with the real thing, from a real server or the code that writes it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.catalog.discovery import discover
from app.core.startup import StartupError
from app.main import create_app
from app.settings import Settings
from app.settings.servers import NamedServerSettings, lock_path, tools_dir
from app.toolkit.supply_chain import IgnoreFileError, read_ignores
from app.toolkit.testing import TestServer
from tests.support.calls import modern_call
from tests.support.docs_blocks import Block, is_setting
from tests.support.docs_checks import DEV_SERVER, make_default, run_module
from tests.support.entra import EntraStandIn
from tests.support.servers import free_port
from tests.support.values import REPO, settings_for

CONTOSO = "https://mcp.contoso.com"  # the docs' example host
# A tool whose 403 names two scopes (docs/authorization.md), and the hr server's tool (docs/servers.md).
STEP_UP_TOOL = 'from app import tool\n\n\n@tool(scopes=["notes.read", "notes.write"])\ndef edit_note(title: str) -> str:\n    return title\n'  # noqa: E501
HR_TOOL = 'from app import tool\n\n\n@tool(scopes=["hr.read"])\ndef payroll() -> str:\n    return "paid"\n'
SAMPLE_CALLS = {"search_notes": {"query": "kafka"}}  # arguments for the calls whose audit records the docs show


def post_call(server: TestServer, path: str, tool: str, token: str | None, host: str | None = None) -> httpx2.Response:
    """One raw 2026-07-28 `tools/call` (its arguments from `SAMPLE_CALLS`), optionally with another Host header."""
    headers, body = modern_call(tool, SAMPLE_CALLS.get(tool, {}))
    headers |= ({"Host": host} if host else {}) | ({"Authorization": f"Bearer {token}"} if token else {})
    return httpx2.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


def check_sample(block: Block, contoso: Callable[[], TestServer], folder: Path) -> None:
    """A sample the page shows: which one it is decides what it is compared with; one no check knows fails."""
    text = block.text.strip()
    if text.startswith(("HTTP/", "WWW-Authenticate:")):
        check_challenge(block, contoso())
    elif text.startswith("routes error:"):
        check_route_error(block, folder)
    elif text.startswith("VULN-ID"):
        check_ignore_line(block, folder)
    elif all(re.fullmatch(r"\s*[\w.-]+/?\s*(#.*)?", line) for line in text.splitlines()):
        check_layout(block)
    else:
        raise AssertionError(f"{block.where}: no check knows this sample")


def check_challenge(block: Block, server: TestServer) -> None:
    """The page's 401 or 403 challenge is what the server answers, the page's `…` standing for the rest."""
    lines = block.text.strip().splitlines()
    status_line = lines.pop(0) if lines[0].startswith("HTTP/") else None
    name, value = " ".join(line.strip() for line in lines).split(":", 1)
    assert name == "WWW-Authenticate", block.where
    value = value.strip()
    metadata = re.search(r'resource_metadata="[^"]*/\.well-known/oauth-protected-resource(/[^"]*)"', value)
    assert metadata, f"{block.where}: no resource_metadata"
    needed = re.search(r'requires scope\(s\): ([^"]+)"', value)
    token, tool, status = None, "whoami", 401
    if needed:
        scopes = set(needed[1].split(", "))
        tool = next(s.name for s in discover(server.settings.tools.dir).of("tool") if s.requirement.scopes == scopes)
        token, status = server.issuer.user_token(sorted(scopes)[:-1]), 403
    answer = post_call(server, metadata[1], tool, token, host=CONTOSO.removeprefix("https://"))
    assert answer.status_code == status, f"{block.where}: {answer.status_code}"
    if status_line:
        assert status_line == f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", block.where
    pattern = ".*?".join(re.escape(part) for part in value.split("…"))
    assert re.fullmatch(pattern, answer.headers["www-authenticate"]), f"{block.where}: {answer.headers}"


def check_route_error(block: Block, tmp_path: Path) -> None:
    """Startup with a route like the one the message names stops with exactly that message."""
    message = " ".join(block.text.split())
    route = re.search(r"route (\w+) (\S+) \((\w+)\.py:(\w+)\)", message)
    assert route, block.where
    method, path, module, function = route.groups()
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / f"{module}.py").write_text(
        f"from fastapi import APIRouter\n\nrouter = APIRouter()\n\n\n@router.{method.lower()}({path!r})\n"
        f"async def {function}() -> dict[str, str]:\n    return {{}}\n"
    )
    with pytest.raises(StartupError) as refused:
        create_app(settings_for(EntraStandIn(), free_port(), routes={"dir": tmp_path / "routes"}))
    assert refused.value.line() == message, block.where


def check_ignore_line(block: Block, tmp_path: Path) -> None:
    """The ignore-file line format the page shows is the one `make audit` reads (and names when a line is wrong)."""
    template = block.text.strip()
    lines = [
        template.replace("VULN-ID", "PYSEC-2024-1").replace("[until=YYYY-MM-DD]", "until=2999-12-31"),
        template.replace("VULN-ID", "GHSA-abcd-efgh-ijkl").replace(" [until=YYYY-MM-DD]", ""),
    ]
    (tmp_path / "ignore.txt").write_text("\n".join(lines) + "\n")
    active, expired = read_ignores(tmp_path / "ignore.txt")
    assert [entry.id for entry in active] == ["PYSEC-2024-1", "GHSA-abcd-efgh-ijkl"] and not expired, block.where
    (tmp_path / "bad.txt").write_text("PYSEC-2024-1\n")
    with pytest.raises(IgnoreFileError, match=re.escape(f"`{template}`")):
        read_ignores(tmp_path / "bad.txt")


def check_layout(block: Block) -> None:
    """A folder tree: the first server's tools and lock are where the server reads them, each further server's
    where its `SERVERS__{NAME}__*` defaults put them, and the variables in its comments are settings."""
    paths: list[str] = []
    stack: list[str] = []
    for line in block.text.rstrip().splitlines():
        entry = line.split("#", 1)[0].rstrip()
        depth = (len(entry) - len(entry.lstrip())) // 2
        stack[depth:] = [entry.strip()]
        paths.append("".join(stack))
    defaults = Settings(_env_file=None, app_env="development").served_one()
    assert f"{defaults.tools_dir.relative_to(REPO)}/" in paths and "tools.lock" in paths, f"{block.where}: {paths}"
    for name in {p.split("/")[1] for p in paths if p.startswith("servers/") and p.count("/") > 1}:
        server = NamedServerSettings(path=f"/{name}/mcp")
        assert f"{tools_dir(name, server).relative_to(REPO)}/" in paths, f"{block.where}: {name}'s tools"
        assert str(lock_path(name, server).relative_to(REPO)) in paths, f"{block.where}: {name}'s lock"
    names = re.findall(r"\b[A-Z][A-Z0-9_]*__[A-Z0-9_]+\b", block.text)
    assert all(is_setting(n) for n in names), f"{block.where}: not settings: {names}"


# ---- commands that need a server or a sandbox ---------------------------------------------------------------------
def audit_record(server: TestServer, event: str, target: str) -> dict[str, Any]:
    """The audit record a call of `target` leaves in the server's audit file."""
    token = server.issuer.user_token(["notes.read"])
    assert post_call(server, "/mcp", target, token).status_code == 200
    sink = Path(server.settings.audit.sink.removeprefix("file:"))
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    return next(r for r in reversed(records) if r["event"] == event and r.get("target") == target)


def check_audit_verify(block: Block, server: TestServer, folder: Path) -> None:
    """`verify` on the server's audit log and on a copy with one record edited: what each prints is one of the
    block's `# ok: ...` and `# BROKEN ...` lines (digits and `…` standing for any)."""
    audit_record(server, "tool_call", "search_notes")
    good = Path(server.settings.audit.sink.removeprefix("file:"))
    lines = good.read_text().splitlines(keepends=True)
    edited = folder / "edited.jsonl"
    edited.write_text("".join([*lines[:-1], lines[-1].replace('"outcome":"success"', '"outcome":"denied"')]))
    printed = [run_module("app.observability.audit", ["verify", str(path)]) for path in (good, edited)]
    assert [code for code, _ in printed] == [0, 1], printed
    shown = re.findall(r"^# (ok: .*|BROKEN .*)$", block.text, re.M)
    assert len(shown) == 2, f"{block.where}: shows no output of verify"
    for line, (_, output) in zip(shown, printed, strict=True):
        pattern = "".join(
            r"\S*" if part.endswith("…") else r"\d+" if part.isdigit() else re.escape(part)
            for part in re.split(r"(\S*…|\d+)", line)
        )
        assert re.fullmatch(pattern, output.strip()), f"{block.where}: shows {line!r}; verify prints {output!r}"


_INSPECTED: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {}


def run_inspector(block: Block, argv: list[str], server: TestServer) -> None:
    """The Inspector's CLI with the page's arguments, against the dev server with a token for `make token`'s default
    scopes (once per distinct command line)."""
    inspector = os.environ.get("MCP_INSPECTOR") or str(REPO / ".ci/.node/node_modules/.bin/mcp-inspector")
    if not os.path.exists(inspector):
        assert not os.environ.get("CI"), f"{block.where}: the MCP Inspector is not installed ({inspector})"
        return  # outside CI, the pinned packages are what can be checked
    token = server.issuer.user_token(make_default("SCOPES").split())
    if (key := tuple(argv)) not in _INSPECTED:
        args = [a.replace(DEV_SERVER, server.url).replace("$SUBST", token) for a in argv[1:]]
        env = {**os.environ, "PATH": f"{os.path.dirname(inspector)}:{os.environ['PATH']}"}
        _INSPECTED[key] = subprocess.run([inspector, *args], capture_output=True, text=True, timeout=120, env=env)
    ran = _INSPECTED[key]
    assert ran.returncode == 0 and json.loads(ran.stdout)["tools"], f"{block.where}: {ran.stderr[-2000:]}"


def run_curl(block: Block, argv: list[str], server: TestServer) -> None:
    """curl of the dev server's address, sent to a server serving as `make run` does."""
    assert argv[-1].startswith(DEV_SERVER), f"{block.where}: curl {argv[-1]}, not the dev server"
    got = subprocess.run(["curl", *argv[1:-1], server.url + argv[-1].removeprefix(DEV_SERVER)], capture_output=True)
    assert got.returncode == 0 and json.loads(got.stdout)["resource"] == server.endpoint, f"{block.where}: {got}"


def run_toolslock(block: Block, args: list[str], monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """The lock commands of docs/servers.md, run in a copy of its layout (servers/hr/tools/payroll.py)."""
    tools = folder / "servers" / "hr" / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    (tools / "payroll.py").write_text(HR_TOOL)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("SERVERS__HR__PATH", "/hr/mcp")
    monkeypatch.setenv("SERVERS__HR__TOOLS_DIR", "servers/hr/tools")
    code, printed = run_module("app.toolkit.toolslock", args)
    assert code == 0, f"{block.where}: python -m app.toolkit.toolslock {' '.join(args)}: {printed}"
    assert (folder / "servers" / "hr" / "tools.lock").is_file(), printed
