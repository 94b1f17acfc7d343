"""`progress`: how a tool author reports a long-running tool's status (the task's `statusMessage`)."""

from __future__ import annotations

from app.tasks.run import current_run


class Progress:
    """Report how a long-running tool is getting on. Use the `progress` instance from `app`.

    In a task (`@tool(task=...)`, docs/tasks.md) the message becomes the task's `statusMessage`, which the client
    sees when it polls; in a synchronous call there is nobody polling, and it does nothing.

    Example:
        @tool(scopes=["reports.run"], task="optional")
        async def quarterly_report(quarter: str) -> str:
            await progress.report("collecting figures")
            ...
    """

    async def report(self, message: str) -> None:
        """Set the task's status message (at most 500 characters are kept).

        Args:
            message: what the tool is doing now, for the user (never a secret: the client shows it).
        """
        run = current_run()
        if run is not None:
            await run.report(message)


progress = Progress()
