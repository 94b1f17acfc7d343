"""The fenced code blocks of the documentation (docs/*.md and README.md) as tests/repo/test_docs_examples.py checks
them: where each block is, what kind of text it is, and the names a block may use (settings, make targets, pinned npm
packages, the console script)."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.values import REPO

PAGES = (*sorted((REPO / "docs").glob("*.md")), REPO / "README.md")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^`\s]*)")
_HEADER = re.compile(r"# ((?:tools|routes|tests)/[\w/]+\.py)")
_DECORATORS = {"tool", "resource", "prompt", "completion"}


@dataclass(frozen=True)
class Block:
    """One fenced block: its page, its place on the page (1-based) and its text, dedented to the fence."""

    path: Path
    ordinal: int
    lang: str
    text: str
    line: int  # of the opening fence
    section: str  # the nearest heading above it

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.ordinal}-{self.lang or 'plain'}"

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} ({self.id})"

    @property
    def header(self) -> str | None:
        """The repository path a Python block names on its first line (`# tools/weather.py`), if it names one."""
        match = _HEADER.fullmatch(self.text.split("\n", 1)[0].strip())
        return match[1] if match else None


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown page, indented ones (in list items) too."""
    found: list[Block] = []
    lines, section, i = path.read_text(encoding="utf-8").splitlines(), "", 0
    while i < len(lines):
        if (fence := _FENCE.match(lines[i])) is None:
            if lines[i].startswith("#"):
                section = lines[i].lstrip("#").strip()
            i += 1
            continue
        indent, mark = fence["indent"], fence["fence"]
        closing = re.compile(rf"^\s*{re.escape(mark[0])}{{{len(mark)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])), None)
        assert end is not None, f"{path}:{i + 1}: a code block that is never closed"
        body = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[i + 1 : end]]
        found.append(Block(path, len(found) + 1, fence["lang"], "\n".join(body) + "\n", i + 1, section))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in read_blocks(page)]


def kind(block: Block) -> str:
    """What the block is, which decides how it is checked; "unknown" has no check (and fails)."""
    if "--8<--" in block.text:
        return "include"
    if block.path.name == "clients.md" and block.lang in ("python", "javascript"):
        return "client-recipe"
    if block.lang == "python":
        try:
            tree = ast.parse(block.text)
        except SyntaxError:
            return "script"  # which fails, on the syntax error, in its own test
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        if (block.header or "").startswith("tests/") or any(f.name.startswith("test_") for f in functions):
            return "pytest"
        if any(isinstance(n, ast.Name) and n.id == "APIRouter" for n in ast.walk(tree)):
            return "routes"
        if any(_decorator_name(d) in _DECORATORS for f in functions for d in f.decorator_list):
            return "tools"
        return "script"
    return {"bash": "bash", "sh": "bash", "dotenv": "dotenv", "json": "json", "http": "sample", "text": "sample"}.get(
        block.lang, "unknown"
    )


def _decorator_name(node: ast.expr) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def count_tests(block: Block) -> int:
    tree = ast.parse(block.text)
    return sum(isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


def code_of(source: str) -> str:
    """A module's code, comments, layout and module docstring aside: two texts that differ only there are equal."""
    body = ast.parse(source).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return ast.dump(ast.Module(body=body, type_ignores=[]))


# ---- shell command lines ----------------------------------------------------------------------------------------
@dataclass
class Command:
    """One simple command of a shell block: its `NAME=value` prefix, its words, and the line it came from."""

    env: dict[str, str]
    argv: list[str]
    line: str


def shell_commands(text: str) -> Iterator[Command]:
    """The commands of a shell block, continuation lines joined, comments dropped, `$(...)` substitutions included
    (as commands of their own, and as `$SUBST` in the word that holds them)."""
    for raw in re.sub(r"\\\n\s*", " ", text).splitlines():
        inner = re.findall(r"\$\(([^()]*)\)", raw)
        lexer = shlex.shlex(re.sub(r"\$\([^()]*\)", "$SUBST", raw), posix=True, punctuation_chars="|&;")
        lexer.whitespace_split = True
        words: list[str] = []
        for word in [*lexer, ";"]:
            if word not in ("|", "||", "&&", ";", "&"):
                words.append(word)
                continue
            env = {}
            while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0], re.S):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            if env or words:
                yield Command(env, words, raw.strip())
            words = []
        for command in inner:
            yield from shell_commands(command)


# ---- names a block may use ----------------------------------------------------------------------------------------
@cache
def setting_patterns(sections: bool = False) -> tuple[re.Pattern[str], ...]:
    """Every setting's environment variable (or with `sections`, every `SECTION__` prefix of them); `{NAME}` (a keyed
    section's entry) matches any name."""
    from app.settings import Settings
    from app.toolkit.settings_reference import KEY, leaf_fields

    names = {env for env, _ in leaf_fields(Settings)}
    if sections:
        names = {env[: found.end()] for env in names for found in re.finditer("__", env)}
    return tuple(re.compile(re.escape(name).replace(re.escape(KEY), r"[A-Z0-9_]+?") + "$") for name in names)


def is_setting(name: str) -> bool:
    """A setting's variable; one ending in `__` (`SERVERS__HR__`, from `SERVERS__HR__*`) names a section of them."""
    return any(pattern.match(name.upper()) for pattern in setting_patterns(sections=name.endswith("__")))


def otel_variable(name: str) -> bool:
    """An `OTEL_*` variable the OpenTelemetry API or SDK defines (the server reads them from the environment)."""
    import opentelemetry.environment_variables as api
    import opentelemetry.sdk.environment_variables as sdk

    return name.startswith("OTEL_") and (hasattr(api, name) or hasattr(sdk, name))


# Variables of other programs the docs set, and who reads them.
OTHER_PROGRAMS_VARIABLES = {
    "REQUESTS_CA_BUNDLE": "requests (MSAL's HTTP client): the CA bundle to trust",
    "SSL_CERT_FILE": "OpenSSL (httpx2): the CA bundle to trust",
}


@cache
def make_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([a-z0-9][\w-]*):", (REPO / "Makefile").read_text(), re.M))


@cache
def make_variables() -> frozenset[str]:
    text = (REPO / "Makefile").read_text()
    return frozenset(re.findall(r"\$\((\w+)\)", text)) | frozenset(re.findall(r"^(\w+)\s*[?:]?=", text, re.M))


@cache
def ci_npm_packages() -> frozenset[str]:
    """`name@version` of every package `.ci/run` installs with npm, its shell variables expanded."""
    text = (REPO / ".ci" / "run").read_text()
    variables = dict(re.findall(r"^(\w+)=(\S+)$", text, re.M))
    install = re.search(r"npm install (.*?)>", re.sub(r"\\\n", " ", text), re.S)
    assert install, ".ci/run installs no npm packages"
    words = shlex.split(re.sub(r"\$(\w+)", lambda m: variables[m[1]], install[1]))
    return frozenset(word for word in words if "@" in word[1:])


@cache
def console_scripts() -> dict[str, str]:
    return dict(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])


def tracked(path: str) -> bool:
    """Is `path` a file git tracks in this repository?"""
    found = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=REPO, capture_output=True, check=False)
    return found.returncode == 0
