"""Every fenced code block of docs/*.md and README.md is real and runs: one test per block (`tools.md:3-python`),
and a block no check knows fails, so a new block lands with its check.

- Tool and route modules are loaded by the real discovery and served by the real app on a real uvicorn, trusting an
  Entra stand-in (over TLS, so on-behalf-of works): every tool refuses the callers it must, and every tool, resource,
  prompt, completion and route is called, as `CALLS` and `ROUTE_CALLS` in tests/support/docs_examples.py say. A
  block that names a repository file (`# routes/whoami.py`) must be that file's code.
- Test modules run with pytest in a subprocess, as a tool author's project runs them: the kit's fixtures, the
  repository's tools/ and routes/, and the modules the pages name as files there (one run for all of them).
- Shell blocks: every command is checked for real (`make -n` of a real target, `python -m` modules with their
  arguments, settings and OTel variables, npm pins of .ci/run, git paths, curl and the Inspector's CLI against a
  served server, the audit and lock commands run); `.env` files load as the server reads them; JSON documents are
  client configurations, Entra manifests or audit records, each compared with what it stands for; challenges and
  messages are compared with what the server answers or prints (tests/support/docs_checks.py, docs_samples.py).
- Every other Python block also passes ruff's rules for names: it imports what it uses and uses what it imports.
- The Python and TypeScript recipes of docs/clients.md run in tests/main/test_docs_client_recipes.py: here it is
  checked that that module exists and reads the page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.toolkit.testing import TestServer, serve_tools
from tests.support.docs_blocks import PAGES, Block, Command, all_blocks, count_tests, kind
from tests.support.docs_checks import (
    check_docker_run,
    check_dotenv,
    check_json,
    check_npx,
    check_python_is_complete,
    check_shell,
    module_command,
)
from tests.support.docs_examples import (
    exercise_routes,
    exercise_tools,
    project_results,
    pytest_module_name,
    start_project,
)
from tests.support.docs_samples import (
    CONTOSO,
    HR_TOOL,
    STEP_UP_TOOL,
    audit_record,
    check_audit_verify,
    check_sample,
    run_curl,
    run_inspector,
    run_toolslock,
)
from tests.support.entra import EntraStandIn
from tests.support.servers import ServerThread
from tests.support.tls import self_signed
from tests.support.values import REPO

BLOCKS = all_blocks()
Results = dict[str, list[tuple[str, str | None]]]


# ---- servers and the test run -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def obo_entra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntraStandIn]:
    """The Entra stand-in over TLS (MSAL's on-behalf-of needs https), trusted by this process for the module."""
    cert, key = self_signed(tmp_path_factory.mktemp("docs-entra"))
    stand_in = EntraStandIn()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(cert))
        patch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        server = ServerThread(stand_in.app(), ssl_certfile=str(cert), ssl_keyfile=str(key), timeout_graceful_shutdown=0)
        with server:
            stand_in.base = f"https://127.0.0.1:{server.port}/"
            yield stand_in


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """The repository's tools, and a tool that needs two scopes, at the docs' example host; a second server `hr` at
    /hr/mcp: the servers the pages' challenges come from."""
    root = tmp_path_factory.mktemp("contoso")
    shutil.copytree(REPO / "tools", root / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tools" / "step_up.py").write_text(STEP_UP_TOOL)
    (root / "hr" / "tools").mkdir(parents=True)
    (root / "hr" / "tools" / "payroll.py").write_text(HR_TOOL)
    hr = {"path": "/hr/mcp", "tools_dir": root / "hr" / "tools", "client_id": "9a7e3b21-0000-4000-8000-000000000002"}
    with serve_tools(root / "tools", mcp={"resource_host": CONTOSO}, servers={"hr": hr}) as server:
        yield server


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """The repository's tools served at the server's own address, as `make run` serves them, auditing to a file."""
    audit = tmp_path_factory.mktemp("dev") / "audit.jsonl"
    with serve_tools(REPO / "tools", audit={"sink": f"file:{audit}"}) as server:
        yield server


@pytest.fixture(scope="module")
def project_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    """The pages' test modules, run once by a pytest of their own (each pytest block's test reads its results)."""
    project = tmp_path_factory.mktemp("docs-project")
    run = start_project(BLOCKS, project)
    try:
        yield project_results(run, project)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


# ---- one check per kind of block ----------------------------------------------------------------------------------
async def check_tools(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    await exercise_tools(block, request.getfixturevalue("obo_entra"), folder)


async def check_routes(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    await exercise_routes(block, request.getfixturevalue("obo_entra"), folder)


async def check_pytest(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    cases = request.getfixturevalue("project_run").get(pytest_module_name(block), [])
    assert len(cases) == count_tests(block), f"{block.where}: pytest ran {cases} of {count_tests(block)} test(s)"
    failed = [f"{name}: {failure}" for name, failure in cases if failure]
    assert not failed, f"{block.where}: " + "\n".join(failed)


async def check_script(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    """A Python snippet that is neither tools, routes nor tests: complete, so it runs as a script of its own."""
    (folder / "snippet.py").write_text(block.text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ran = subprocess.run([sys.executable, "snippet.py"], cwd=folder, env=env, capture_output=True, text=True)
    assert ran.returncode == 0, f"{block.where}: {ran.stderr[-2000:]}"


async def check_client_recipe(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    recipes = REPO / "tests" / "main" / "test_docs_client_recipes.py"
    assert recipes.is_file(), f"{block.where}: runs in {recipes.relative_to(REPO)}, which does not exist"
    assert "docs/clients.md" in recipes.read_text(), f"{block.where}: {recipes.name} does not read docs/clients.md"


async def check_include(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    raise AssertionError(f"{block.where}: `--8<--` includes another file; put the code in the page as real text")


async def check_bash(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    def with_servers(command: Command) -> bool:
        """The programs whose check needs a server or a sandbox; False for the others."""
        argv, found = command.argv, module_command(command.argv)
        if argv[0] == "npx":
            if "--cli" in (rest := check_npx(block, argv[1:])):
                run_inspector(block, rest, request.getfixturevalue("dev"))
        elif argv[0] == "curl":
            run_curl(block, argv, request.getfixturevalue("dev"))
        elif argv[:2] == ["docker", "run"]:
            (folder / "prod.env").write_text("")
            check_docker_run(block, argv[1:], folder / "prod.env")
        elif found and found[0] == "app.observability.audit":
            check_audit_verify(block, request.getfixturevalue("dev"), folder)
        elif found and found[0] == "app.toolkit.toolslock":
            run_toolslock(block, found[1], request.getfixturevalue("monkeypatch"), folder)
        else:
            return False
        return True

    check_shell(block, with_servers)


async def check_dotenv_block(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    check_dotenv(block, folder)


async def check_json_block(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    check_json(block, lambda event, target: audit_record(request.getfixturevalue("dev"), event, target))


async def check_sample_block(block: Block, request: pytest.FixtureRequest, folder: Path) -> None:
    check_sample(block, lambda: request.getfixturevalue("contoso"), folder)


HANDLERS = {
    "tools": check_tools,
    "routes": check_routes,
    "pytest": check_pytest,
    "script": check_script,
    "client-recipe": check_client_recipe,
    "include": check_include,
    "bash": check_bash,
    "dotenv": check_dotenv_block,
    "json": check_json_block,
    "sample": check_sample_block,
}


def _param(block: Block) -> Any:
    return pytest.param(block, id=block.id, marks=[pytest.mark.slow] if kind(block) == "pytest" else [])


@pytest.mark.parametrize("block", [_param(block) for block in BLOCKS])
async def test_docs_block(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    handler = HANDLERS.get(kind(block))
    assert handler, f"{block.where}: no check knows a {block.lang or 'plain'} block like this: add one to HANDLERS"
    if block.lang == "python" and kind(block) != "client-recipe":  # the recipes are the other module's to check
        check_python_is_complete(block)
    await handler(block, request, tmp_path)


def test_every_fence_of_every_page_is_a_block() -> None:
    """The reader finds every block, each with its own id: a fence it misread would leave a block unchecked."""
    ids = [block.id for block in BLOCKS]
    assert len(set(ids)) == len(ids)
    fences = {page.name: len(re.findall(r"^\s*(```|~~~)", page.read_text(), re.M)) // 2 for page in PAGES}
    assert fences == {page.name: sum(block.path == page for block in BLOCKS) for page in PAGES}
