"""Optional target (af): target (a) plus `gc.freeze()` after start-up, to show what GC tuning is worth."""

from __future__ import annotations

import gc

from bench.servers.sdk_bare import app

gc.collect()
gc.freeze()  # move start-up objects out of the collector's reach: gen-2 passes stop walking them

__all__ = ["app"]
