"""A second server's task tool, with the same name as one of tests/support/task_tools (tests/tasks/test_servers.py)."""

from app import progress, tool


@tool(scopes=["notes.read"], task="optional")
async def long_job(seconds: float = 0.0, run: str = "") -> str:
    """The second server's `long_job`: answers at once."""
    await progress.report("second server")
    return "second server's long_job"
