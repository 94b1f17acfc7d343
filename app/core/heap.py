"""The server process's heap after startup: what startup built lives as long as the process, so the garbage
collector is told to leave it alone (and, with SERVER__GC_THRESHOLD, to run less often)."""

from __future__ import annotations

import gc


def freeze_startup_heap(threshold: int) -> None:
    """Move everything built so far out of the collector's way, so each GC pass walks only per-request garbage
    (startup objects dominate a heap of this size); a nonzero `threshold` is the allocations between
    young-generation collections."""
    gc.collect()
    gc.freeze()
    if threshold:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
