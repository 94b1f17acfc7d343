"""`python -m app.cli` is the `secure-mcp-server` console script."""

from app.cli import main

main()
