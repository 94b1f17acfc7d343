"""Composition: the one place settings become the values each part takes (resource server, core build, rooms)."""
