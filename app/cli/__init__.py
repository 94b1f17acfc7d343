"""The `secure-mcp-server` command (Typer): every entry point of the app under one name, `--help` on each.

`python -m app` is the same command, serving over HTTP when no command is given. The Makefile's targets call it.
Commands import what they run when they run, so `--help` needs no configuration and starts nothing. Exit codes are
in app/cli/common.py (0 done, 1 a check found errors, 2 usage or configuration, 130 interrupted).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import FOUND, USAGE, fail, load_settings
from app.cli.doctor import doctor
from app.cli.entra import entra

cli = typer.Typer(
    name="secure-mcp-server",
    help="A production MCP server: serve it, get dev tokens, scaffold tools, check and register it with Entra ID.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback with locals could show a secret: bugs keep Python's own
    context_settings={"help_option_names": ["-h", "--help"]},
)
audit = typer.Typer(help="The audit log's hash chain.", no_args_is_help=True)
cli.add_typer(audit, name="audit")
cli.add_typer(entra, name="entra")
cli.command("doctor")(doctor)

Server = Annotated[
    str, typer.Option("--server", help="a server of this app: its SERVERS__{KEY} name (default: the first)")
]


@cli.command()
def serve(
    reload: Annotated[
        bool, typer.Option(help="development: restart when tools/ or routes/ change (`make dev`)")
    ] = False,
) -> None:
    """Serve the MCP server(s) over HTTP, as SERVER__* and the rest of the settings say (`make run`)."""
    from app.cli.serve import serve as run

    run(load_settings(), reload=reload)


@cli.command()
def stdio(server: Server = "") -> None:
    """Serve one MCP server over stdio to a desktop client, as the user signed in with MSAL (docs/local.md)."""
    from app.local.serve import main as serve_stdio

    serve_stdio(["--server", server] if server else [])


@cli.command()
def token(
    scopes: Annotated[str, typer.Option(help="space-separated delegated scopes (scp)")] = "mcp.read",
    roles: Annotated[str, typer.Option(help="space-separated app roles")] = "",
    app: Annotated[bool, typer.Option("--app", help="an app-only token (roles, no scp)")] = False,
    lifetime: Annotated[int, typer.Option(min=1, max=86400, help="seconds until it expires")] = 3600,
    server: Server = "",
) -> None:
    """Print a development access token from the dev issuer (`make token`); which issuer, on stderr."""
    from app.compose.devissuer import DevIssuerCommandError, mint_token

    settings = load_settings(app_env="development")
    try:
        typer.echo(mint_token(settings, server.lower(), scopes, roles, app_only=app, lifetime=lifetime))
    except DevIssuerCommandError as exc:
        fail(f"token: {exc}")


@cli.command("tools-lock")
def tools_lock(
    check: Annotated[bool, typer.Option("--check", help="exit 1 if the lock differs; write nothing")] = False,
    server: Server = "",
) -> None:
    """Write a server's tools.lock from its served tool metadata (review the diff), or `--check` it (`make
    tools-lock`). The tools folder and lock are the ones the server reads (TOOLS__DIR, TOOLS__LOCK_PATH)."""
    from app.compose.startup import exit_on_startup_error
    from app.toolkit.toolslock import main as lock

    with exit_on_startup_error():
        one = load_settings(app_env="development").served_one(server.lower())
    paths = ["--tools-dir", str(one.tools_dir), "--lock", str(one.lock_path)]
    raise typer.Exit(lock(["check" if check else "write", *paths]))


@cli.command("new-tool")
def new_tool(name: Annotated[str, typer.Argument(help="the module name, e.g. my_tool")]) -> None:
    """Scaffold tools/NAME.py and its test, then update tools.lock (`make new-tool NAME=...`)."""
    from app.toolkit.scaffold import main as scaffold
    from app.toolkit.toolslock import main as lock

    if code := scaffold([name]):
        raise typer.Exit(code)
    code = lock(["write"])
    typer.echo(f"next: edit tools/{name}.py and its test; review the tools.lock diff before you commit")
    raise typer.Exit(code)


@cli.command("new-route")
def new_route(name: Annotated[str, typer.Argument(help="the module name, e.g. my_route")]) -> None:
    """Scaffold routes/NAME.py (GET /api/NAME) and its test (`make new-route NAME=...`)."""
    from app.toolkit.scaffold import main as scaffold

    if code := scaffold([name, "--kind", "route"]):
        raise typer.Exit(code)
    typer.echo(f"next: edit routes/{name}.py (its scopes and roles) and its test")


@audit.command("verify")
def audit_verify(file: Annotated[Path, typer.Argument(help="an audit log (JSON lines)")]) -> None:
    """Verify an audit log's hash chain; report the first broken link (exit 1)."""
    from app.observability.audit import main as verify

    raise typer.Exit(verify(["verify", str(file)]))


@cli.command("settings")
def show_settings(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of NAME=value lines")] = False,
) -> None:
    """Print the effective settings (environment, `.env`, secret files, Key Vault), secrets masked."""
    from app.cli.effective import effective

    typer.echo(effective(load_settings(), as_json=as_json))


def main(default_command: str | None = None) -> None:
    """The console script; `python -m app` passes `serve` as the command when none is given."""
    argv = sys.argv[1:]
    if default_command and (not argv or (argv[0].startswith("--") and argv[0] not in ("--help", "-h"))):
        argv = [default_command, *argv]
    try:
        cli(args=argv, prog_name="secure-mcp-server" if default_command is None else "python -m app")
    except KeyboardInterrupt:
        raise SystemExit(130) from None


__all__ = ["FOUND", "USAGE", "cli", "main"]
