"""Target (af): target (a) plus the GC settings (d) starts with, to show how much of (d)'s speed is GC tuning."""

from __future__ import annotations

import gc

from bench.servers.sdk_bare import app

gc.collect()
gc.freeze()  # move start-up objects out of the collector's reach: gen-2 passes stop walking them
gc.set_threshold(10_000, *gc.get_threshold()[1:])  # as (d)'s SERVER__GC_THRESHOLD default

__all__ = ["app"]
