"""A small notes service: typed, validated arguments, and a write that needs its own scope."""

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, Field

from app import Caller, completion, current_principal, prompt, resource, tool

# Per-caller in-memory store: a stand-in for your real backend. Keyed by principal, so callers never see each other's.
_NOTES: dict[str, list["Note"]] = defaultdict(list)


class Note(BaseModel):
    title: str
    body: str
    created_at: datetime


@tool(scopes=["notes.read"])
def search_notes(
    caller: Caller,
    query: Annotated[str, Field(min_length=1, max_length=200, description="Text to look for in titles and bodies")],
    limit: Annotated[int, Field(ge=1, le=50, description="At most this many notes")] = 10,
) -> list[Note]:
    """Find the caller's notes whose title or body contains the query (case-insensitive)."""
    needle = query.casefold()
    notes = _NOTES[caller.key]
    return [n for n in notes if needle in n.title.casefold() or needle in n.body.casefold()][:limit]


@tool(scopes=["notes.write"])
def create_note(
    caller: Caller,
    title: Annotated[str, Field(min_length=1, max_length=120)],
    body: Annotated[str, Field(max_length=10_000)] = "",
) -> Note:
    """Create a note for the caller. Needs the notes.write scope."""
    note = Note(title=title, body=body, created_at=datetime.now(UTC))
    _NOTES[caller.key].append(note)
    return note


@resource("notes://recent", scopes=["notes.read"], mime_type="application/json")
def recent_notes(caller: Caller) -> str:
    """The caller's five most recent notes, as JSON."""
    notes = _NOTES[caller.key][-5:]
    return "[" + ",".join(n.model_dump_json() for n in notes) + "]"


@prompt(scopes=["notes.read"])
def summarize_notes(topic: str) -> str:
    """Ask the model to summarise the caller's notes about a topic."""
    return f"Use the search_notes tool to find my notes about {topic!r}, then summarise them in five bullet points."


@completion("summarize_notes")
def complete_topic(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """Suggest topics from words in the caller's note titles."""
    # A completion's signature is fixed (argument, value, context): `current_principal()` is the caller here.
    words = {w.casefold() for note in _NOTES[current_principal().key] for w in note.title.split()}
    return sorted(w for w in words if w.startswith(value.casefold()))
