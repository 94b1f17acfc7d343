"""What this server serves: the `@tool`, `@resource`, `@prompt` and `@completion` decorators, and discovery of
`tools/`.
"""
