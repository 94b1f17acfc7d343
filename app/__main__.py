"""`python -m app` is the `secure-mcp-server` command (app/cli/): with no command it serves over HTTP, as `serve`
does (`python -m app --reload` as `serve --reload`); `python -m app stdio`, `python -m app doctor` and the rest are
the commands of the same name."""

from __future__ import annotations

from app.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main(default_command="serve")
