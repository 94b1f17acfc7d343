"""Checks of documentation blocks that are not Python modules: shell command lines, `.env` files and JSON documents
(tests/repo/test_docs_examples.py runs them; what needs a server is handed in)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.support.docs_blocks import (
    OTHER_PROGRAMS_VARIABLES,
    Block,
    Command,
    ci_npm_packages,
    console_scripts,
    is_setting,
    make_targets,
    make_variables,
    otel_variable,
    shell_commands,
    tracked,
)
from tests.support.values import REPO

MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def make_default(variable: str) -> str:
    """A Makefile variable's default (`PORT ?= 8000`)."""
    found = re.search(rf"^{variable} \?= (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert found, f"the Makefile has no default for {variable}"
    return found[1].strip()


DEV_SERVER = f"http://{make_default('HOST')}:{make_default('PORT')}"  # where `make run` serves


def run_module(module: str, argv: list[str]) -> tuple[int, str]:
    """`python -m module argv...`, in this process (runpy, as `-m` does): its exit code and what it printed."""
    printed, saved = io.StringIO(), sys.argv
    sys.argv = [module, *argv]
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules": the module was imported before
            runpy.run_module(module, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = saved
    return code, printed.getvalue()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def settings_with(env: dict[str, str], env_file: Path | None = None) -> Settings:
    """The settings these variables (and this `.env`) give; development unless they say otherwise."""
    named = {**env, **(dict.fromkeys(_dotenv(env_file)) if env_file else {})}
    with environment(env):
        return Settings(_env_file=env_file, **({} if "APP_ENV" in named else {"app_env": "development"}))


def _dotenv(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values

    return dotenv_values(path)


# ---- shell --------------------------------------------------------------------------------------------------------
def module_command(argv: list[str]) -> tuple[str, list[str]] | None:
    """(module, arguments) for `python -m module ...`, `uv run python -m ...` and the console script; else None."""
    if argv[:2] == ["uv", "run"]:
        argv = [word for word in argv[2:] if not word.startswith("--")]
    if argv and argv[0] in console_scripts():
        return console_scripts()[argv[0]].split(":")[0].removesuffix(".__main__"), argv[1:]
    if len(argv) >= 3 and re.fullmatch(r"python3?", argv[0]) and argv[1] == "-m":
        return argv[2], argv[3:]
    return None


def check_variables(block: Block, command: Command) -> None:
    """Every `NAME=value` is a setting (and the value one it accepts), an OTel variable the server's exporters read,
    another program's documented variable, or a shell variable the block itself uses."""
    for name in command.env:
        if is_setting(name) or otel_variable(name) or name in OTHER_PROGRAMS_VARIABLES:
            continue
        assert not command.argv and f"${name}" in block.text, f"{block.where}: {name} is not a setting"
    settings = {k: v for k, v in command.env.items() if is_setting(k) and "$" not in v}
    if settings:
        settings_with(settings)  # a value the setting refuses (or a typo in a known section) raises here
    otel = {k: v for k, v in command.env.items() if otel_variable(k)}
    if otel:
        from app.observability.exporters import providers_from_env

        providers = [p for p in providers_from_env("docs-check", otel) if p is not None]
        assert providers, f"{block.where}: {sorted(otel)} turn on no traces or metrics"
        for provider in providers:
            provider.shutdown()


def check_make(block: Block, args: list[str]) -> None:
    targets = [a for a in args if not a.startswith("-") and "=" not in a]
    variables = [a.split("=", 1)[0] for a in args if "=" in a and not a.startswith("-")]
    assert set(targets) <= make_targets(), f"{block.where}: no make target {sorted(set(targets) - make_targets())}"
    assert set(variables) <= make_variables(), f"{block.where}: the Makefile reads no {variables}"
    dry = subprocess.run(["make", "-n", *args], cwd=REPO, env=MAKE_ENV, capture_output=True, text=True, check=False)
    assert dry.returncode == 0, f"{block.where}: make -n {' '.join(args)}: {dry.stderr}"


class _Accepted(Exception):
    """The module's command line parsed the arguments: stop before it acts on them."""


def check_cli(block: Block, args: list[str]) -> None:
    """`secure-mcp-server ...` (`python -m app ...`): the command path exists, `--help` after the arguments exits 0, and
    the command's own parser (Typer's click) takes the arguments and their values, without running the command."""
    import typer
    from typer.testing import CliRunner

    from app.cli import cli

    helped = CliRunner().invoke(cli, [*args, "--help"])
    assert helped.exit_code == 0 and "Usage:" in helped.output, f"{block.where}: secure-mcp-server {args}: {helped}"
    command: Any = typer.main.get_group(cli)
    rest = list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    assert not hasattr(command, "commands"), f"{block.where}: secure-mcp-server {args}: names no command"
    try:
        command.make_context("secure-mcp-server", rest)  # parses and converts every value; runs nothing
    except Exception as exc:  # click's usage errors (Typer's vendored click)
        raise AssertionError(f"{block.where}: secure-mcp-server {' '.join(args)}: {exc}") from None


def check_module(block: Block, module: str, args: list[str]) -> None:
    """The module runs as `python -m` and its command line accepts these arguments: with `--help` after them it
    prints its usage and exits 0 (so it parses them before it does anything), and then, stopped right after its
    argument parser returns, it got no error from it. The app's own command line is Typer's: `check_cli`."""
    if module in ("app", "app.cli"):  # `python -m app` with no command (or only options) is `serve`
        default = module == "app" and (not args or args[0].startswith("-"))
        check_cli(block, ["serve", *args] if default else args)
        return
    code, printed = run_module(module, [*args, "--help"])
    assert code == 0 and "usage:" in printed, f"{block.where}: python -m {module} {' '.join(args)}: {printed}"
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser: argparse.ArgumentParser, *given: Any, **options: Any) -> Any:
        parse(parser, *given, **options)
        raise _Accepted

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        try:
            code, printed = run_module(module, args)
        except _Accepted:
            code = 0
    assert code == 0, f"{block.where}: python -m {module} {' '.join(args)}: {printed}"


def check_npx(block: Block, args: list[str]) -> list[str]:
    """`npx -p name@version ... bin args`: the packages are those .ci/run pins; returns the bin and its arguments."""
    packages, rest = [], list(args)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-p", "--package"):
            packages.append(rest.pop(0))
    unpinned = set(packages) - ci_npm_packages()
    assert not unpinned, f"{block.where}: npx runs {sorted(unpinned)}, .ci/run pins {sorted(ci_npm_packages())}"
    return rest


def check_git(block: Block, args: list[str]) -> None:
    paths = [a for a in args[1:] if not a.startswith("-")]
    assert all(tracked(p) for p in paths), f"{block.where}: git {args[0]} of untracked {paths}"
    if args[0] == "rm" and paths:  # "Removing the sample tools": the list names every sample there is
        folder = str(Path(paths[0]).parent)
        kept = {"tools": "tools/__init__.py", "tests/tools": "tests/tools/test_guards.py"}[folder]
        listed = subprocess.run(["git", "ls-files", folder], cwd=REPO, capture_output=True, text=True, check=False)
        modules = {p for p in listed.stdout.split() if Path(p).parent == Path(folder) and p.endswith(".py")}
        samples = {p for p in modules if folder == "tools" or Path(p).name.startswith("test_")} - {kept}
        assert set(paths) == samples, f"{block.where}: git rm {sorted(paths)}, but {folder}/ holds {sorted(samples)}"


def check_docker_run(block: Block, args: list[str], env_file: Path) -> None:
    """`docker run` as the docs spell it uses the hardening flags and image of `make docker-run`."""
    made = subprocess.run(
        ["make", "-n", "docker-run", f"ENV_FILE={env_file}"], cwd=REPO, env=MAKE_ENV, capture_output=True, text=True
    )
    recipe = re.sub(r"\\\n", " ", made.stdout).split()
    ours, theirs = _options(args[1:]), _options(recipe[2:])
    for flag in ours:
        assert flag in theirs, f"{block.where}: make docker-run has no {flag}"
    for flag in ("--cap-drop", "--security-opt", "-p"):
        assert ours.get(flag) == theirs.get(flag), f"{block.where}: {flag} {ours.get(flag)} != {theirs.get(flag)}"
    assert args[-1] == recipe[-1], f"{block.where}: image {args[-1]}, make docker-run runs {recipe[-1]}"


def _options(words: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("-"):
            following = words[i + 1] if i + 1 < len(words) else ""
            found[word] = None if not following or following.startswith("-") else following
    return found


def check_shell(block: Block, program: Callable[[Command], bool]) -> None:
    """Syntax, then every command; `program` handles the programs that need a server (and says whether it did)."""
    syntax = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, f"{block.where}: {syntax.stderr}"
    alternatives = [c for line in re.findall(r"#\s*or:\s*(.+)$", block.text, re.M) for c in shell_commands(line)]
    for command in [*shell_commands(block.text), *alternatives]:
        check_variables(block, command)
        argv = command.argv
        if not argv or program(command):
            continue
        if (found := module_command(argv)) is not None:
            check_module(block, *found)
        elif argv[0] == "make":
            check_make(block, argv[1:])
        elif argv[0] == "git":
            check_git(block, argv[1:])
        elif argv[0] == "echo":  # prints settings for the reader to copy
            names = [word.split("=", 1)[0] for word in argv[1:] if "=" in word]
            assert names and all(is_setting(n) for n in names), f"{block.where}: echo of non-settings {names}"
        elif argv[0] == "az":
            # The Azure CLI needs a tenant: nothing here can run it. `bash -n` above checked the syntax.
            assert argv[1] in ("ad", "rest"), f"{block.where}: az {argv[1]}"
        else:
            raise AssertionError(f"{block.where}: no check knows the program {argv[0]!r} ({command.line})")


# ---- JSON documents -----------------------------------------------------------------------------------------------
PERMISSION_SCOPE = {
    "id", "value", "type", "isEnabled", "adminConsentDisplayName", "adminConsentDescription",
    "userConsentDisplayName", "userConsentDescription",
}  # fmt: skip
APP_ROLE = {"id", "value", "allowedMemberTypes", "isEnabled", "displayName", "description"}


def check_client_config(block: Block, document: dict[str, Any]) -> None:
    """An MCP client's configuration (Claude Desktop's `mcpServers`, VS Code's `servers`): each server either
    launches `python -m app stdio` (or the console script) with settings in `env`, or is reached at the server URL."""
    entries = document.get("mcpServers") or document.get("servers")
    assert isinstance(entries, dict) and entries, f"{block.where}: no servers"
    development = Settings(_env_file=None, app_env="development")
    for name, entry in entries.items():
        if "command" in entry:
            found = module_command([entry["command"], *entry.get("args", [])])
            assert found is not None, f"{block.where}: {name} runs {entry}"
            assert found[0] in ("app", "app.cli") and found[1][:1] == ["stdio"], f"{block.where}: {name} runs {entry}"
            check_module(block, *found)
            assert entry.get("type", "stdio") == "stdio", f"{block.where}: {name}: type {entry['type']}"
            env = entry.get("env", {})
            assert all(is_setting(k) for k in env), f"{block.where}: {name}: not settings: {sorted(env)}"
            settings_with(env)
        else:
            dev = f"{DEV_SERVER}{development.mcp.path}"
            assert entry.get("url") in (dev, "https://mcp.contoso.com/mcp"), f"{block.where}: {name}: {entry}"
            assert entry.get("type", "http") == "http", f"{block.where}: {name}: type {entry['type']}"


def check_app_manifest(block: Block, document: dict[str, Any]) -> None:
    """An Entra application manifest (or the part of one sent to Microsoft Graph): v2 tokens, well-formed scopes
    and app roles, and the App ID URI the server expects for the docs' example host."""
    api = document["api"]
    assert api["requestedAccessTokenVersion"] == 2, f"{block.where}: the server validates v2 tokens"
    for scope in api["oauth2PermissionScopes"]:
        assert set(scope) == PERMISSION_SCOPE and scope["type"] in ("User", "Admin"), f"{block.where}: {scope}"
    for role in document.get("appRoles", []):
        assert set(role) == APP_ROLE and role["allowedMemberTypes"] == ["Application"], f"{block.where}: {role}"
    if "identifierUris" in document:
        example = Settings(_env_file=None, app_env="development", mcp={"resource_host": "https://mcp.contoso.com"})
        expected = example.served_one().app_id_uri
        assert document["identifierUris"] == [expected], f"{block.where}: the App ID URI is {expected}"
    clients_page = (REPO / "docs" / "clients.md").read_text()
    for client in api.get("preAuthorizedApplications", []):
        assert client["appId"] in clients_page, (
            f"{block.where}: {client['appId']} is not a client docs/clients.md names"
        )


def compare_shape(where: str, sample: Any, real: Any, path: str = "") -> None:
    """The sample has exactly the real document's keys, nested too, with values of the same JSON types."""
    if isinstance(sample, dict) and isinstance(real, dict):
        assert set(sample) == set(real), f"{where}: {path or 'the record'} has keys {sorted(real)}"
        for key in sample:
            compare_shape(where, sample[key], real[key], f"{path}.{key}".lstrip("."))
    elif sample is not None and real is not None:
        assert type(sample) is type(real), f"{where}: {path} is a {type(real).__name__}"
    else:
        assert sample is real, f"{where}: {path} is {real!r}"


def check_json(block: Block, audit_record: Callable[[str, str], dict[str, Any]]) -> None:
    document = json.loads(block.text)
    if "mcpServers" in document or "servers" in document:
        check_client_config(block, document)
    elif "api" in document:
        check_app_manifest(block, document)
    elif {"seq", "prev", "hash", "event"} <= set(document):
        compare_shape(block.where, document, audit_record(document["event"], document["target"]))
    else:
        raise AssertionError(f"{block.where}: no check knows this JSON document")


def check_dotenv(block: Block, folder: Path) -> None:
    """Every line sets a setting, and the file loads as the server would read it (and passes production's checks
    when it says production)."""
    from app.settings.production import refuse_insecure_production

    path = folder / "docs.env"
    path.write_text(block.text)
    unknown = [name for name in _dotenv(path) if not is_setting(name)]
    assert not unknown, f"{block.where}: not settings: {unknown}"
    with pytest.MonkeyPatch.context() as patch:
        for name in _dotenv(path):
            patch.delenv(name, raising=False)  # the file's values, not this process's
        settings = settings_with({}, path)
    if settings.app_env == "production":
        refuse_insecure_production(settings)


def check_python_is_complete(block: Block) -> None:
    """Python the reader copies is complete: it parses, imports what it uses and uses what it imports (ruff's
    pyflakes rules for names; an unused local such as a placeholder's is allowed)."""
    rules = "E9,F401,F403,F405,F811,F821,F822,F823"
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", rules, "--stdin-filename", "block.py"]
    linted = subprocess.run([*command, "-"], input=block.text, capture_output=True, text=True, check=False)
    assert linted.returncode == 0, f"{block.where}: {linted.stdout}"
