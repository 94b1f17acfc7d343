"""Records every probe-tool invocation, so tests can show a rejected request never reached a tool."""

calls: list[str] = []
