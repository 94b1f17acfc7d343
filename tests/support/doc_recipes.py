"""docs/clients.md's code blocks as a reader takes them (by section and language), and the browser step of a sign-in,
kept out of the page: headless Chromium on the sign-in pages a recipe opens (the facade's consent page, then the dev
issuer's), up to the redirect back to the recipe's loopback listener.

A Python recipe opens the browser with `webbrowser.open`, which honours `BROWSER`: `recipe_browser()` is a `BROWSER`
command that runs this module, `python -m tests.support.doc_recipes URL`. It records what it saw in the file
`RECIPE_BROWSER_LOG` names, one JSON line per sign-in (the authorization URL, the pages' text, the names of the
parameters brought back, and `iss`); never the code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.values import REPO

DOC = REPO / "docs" / "clients.md"
FENCE = re.compile(r"^```([\w.-]*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def sections(text: str) -> dict[str, str]:
    """The page's `## ` sections by title, each with its `###` subsections."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def code_blocks(text: str, language: str) -> list[str]:
    """The fenced blocks of `text` in `language` (```python ...```), as written."""
    return [body for lang, body in FENCE.findall(text) if lang == language]


def doc_block(section: str, language: str) -> str:
    """The one `language` block of docs/clients.md's `## {section}` (with its subsections)."""
    blocks = code_blocks(sections(DOC.read_text())[section], language)
    assert len(blocks) == 1, f"## {section} has {len(blocks)} {language} blocks, this test runs one"
    return blocks[0]


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def sign_in_through(context: Any, url: str) -> tuple[list[str], dict[str, str]]:
    """Open `url` in `context` (a Playwright browser context); Approve on the facade's consent page when there is one,
    Sign in on the dev issuer's page with what it pre-selects, and follow the redirect to the request's `redirect_uri`.
    Returns the text of each page, and the authorization response (the redirect's query)."""
    redirect_uri = query(url)["redirect_uri"]
    page = await context.new_page()
    page.set_default_timeout(30_000)
    await page.goto(url)
    texts = [await page.inner_text("body")]
    approve = page.get_by_role("button", name="Approve")
    if await approve.count():
        await approve.click()
        await page.get_by_role("button", name="Sign in").wait_for()
        texts.append(await page.inner_text("body"))
    async with page.expect_navigation(url=f"{redirect_uri}?**"):
        await page.get_by_role("button", name="Sign in").click()
    answer = query(page.url)
    await page.wait_for_load_state("networkidle")  # the listener has answered everything (a favicon) before close
    await page.close()
    return texts, answer


@dataclass
class RecipeRun:
    """One run of a recipe program: its exit status and output, and (Python) what its browser saw."""

    returncode: int | None = None
    out: str = ""
    err: str = ""
    browser: list[dict[str, Any]] = field(default_factory=list)

    def result(self) -> tuple[list[str], dict[str, Any]]:
        """The tools it listed and what `whoami` answered (its `tools:` and `whoami:` lines)."""
        assert self.returncode == 0, f"the recipe failed ({self.returncode}): {self.err[-3000:]}"
        lines = dict(line.split(": ", 1) for line in self.out.splitlines() if line.startswith(("tools: ", "whoami: ")))
        return lines["tools"].split(), json.loads(lines["whoami"])


async def _finish(process: asyncio.subprocess.Process, run: RecipeRun, timeout: float) -> None:
    """Wait for the program's end and keep its output; at the deadline, end it."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        run.returncode, run.out, run.err = process.returncode, out.decode(), err.decode()
    finally:
        await _end(process)


async def _end(process: asyncio.subprocess.Process) -> None:
    """End the program and all it started (its process group: the browser it opened too), unless it has ended."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def run_python(source: str, workdir: Path, resource: str, client_id: str, timeout: float = 180) -> RecipeRun:
    """Save `source` as client.py in `workdir` and run it, as a reader would, for `resource` and `client_id`; its
    `webbrowser.open` signs in through this module (`recipe_browser()`)."""
    (workdir / "client.py").write_text(source)
    log = workdir / "browser.log"
    env = os.environ | {
        "MCP_SERVER_URL": resource,
        "MCP_CLIENT_ID": client_id,
        "BROWSER": recipe_browser(),
        "RECIPE_BROWSER_LOG": str(log),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "client.py", cwd=workdir, env=env, stdout=-1, stderr=-1, start_new_session=True
    )
    run = RecipeRun()
    await _finish(process, run, timeout)
    run.browser = browser_log(log)
    return run


@dataclass
class NodeRun(RecipeRun):
    authorize: str = ""  # the authorization URL the program printed


@asynccontextmanager
async def node_recipe(
    source: str, workdir: Path, resource: str, client_id: str, node: str, sdk: str
) -> AsyncIterator[NodeRun]:
    """Save `source` as client.mjs in `workdir`, next to a node_modules with the SDK (`sdk`, as `npm install` puts
    it), and run it with `node`. Yields once it printed the page to open (the browser step is the caller's), then
    waits for its end."""
    (workdir / "client.mjs").write_text(source)
    packages = workdir / "node_modules" / "@modelcontextprotocol"
    packages.mkdir(parents=True)
    (packages / "sdk").symlink_to(Path(sdk).resolve(), target_is_directory=True)
    env = os.environ | {"MCP_SERVER_URL": resource, "MCP_CLIENT_ID": client_id}
    process = await asyncio.create_subprocess_exec(
        node, "client.mjs", cwd=workdir, env=env, stdout=-1, stderr=-1, start_new_session=True
    )
    run = NodeRun()
    try:
        assert process.stdout is not None
        prefix = "Open this page to sign in: "
        while not run.authorize:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, f"the program ended without a sign-in page: {(await process.communicate())[1].decode()}"
            run.authorize = line.removeprefix(prefix).strip() if line.startswith(prefix) else ""
        yield run
        await _finish(process, run, 90)
    finally:
        await _end(process)


def recipe_browser() -> str:
    """A `BROWSER` value (Python's webbrowser module) that signs in through this module, and waits until it has."""
    return shlex.join(["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.support.doc_recipes"]) + " %s"


def browser_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _browse(url: str) -> None:
    from tests.support.oauth import chromium

    record: dict[str, Any] = {"authorize": url}
    try:
        async with chromium() as context:
            record["pages"], answer = await sign_in_through(context, url)
        record |= {"returned": sorted(answer), "iss": answer.get("iss")}
    finally:
        with Path(os.environ["RECIPE_BROWSER_LOG"]).open("a") as log:
            log.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    asyncio.run(_browse(sys.argv[1]))
