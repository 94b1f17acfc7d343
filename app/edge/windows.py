"""Per-process rate-limit windows: the three strategies `limits` offers, counted in a dict.

Used for `memory://` and as the fail-open fallback while shared storage is down. Why not `limits`' MemoryStorage
here: through its asyncio API one hit costs about 10 µs (key formatting, locking, expiry bookkeeping), the largest
single cost on the request path; these windows count the same and cost a dict lookup.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from limits import RateLimitItem

Strategy = Literal["moving-window", "sliding-window-counter", "fixed-window"]
SWEEP_SECONDS = 60.0  # how often windows nobody used for a whole period are dropped


class Windows:
    """hit / test / retry_after for one strategy, allowing and refusing as `limits` does; O(1) but for a
    once-a-minute sweep."""

    def __init__(self, strategy: Strategy, clock: Callable[[], float] = time.monotonic) -> None:
        self.strategy = strategy
        self.clock = clock
        # (amount, period) -> key -> state: request times (moving window) or a few counts (the other two)
        self.stamps: dict[tuple[int, int], dict[str, deque[float]]] = {}
        self.counts: dict[tuple[int, int], dict[str, list[float]]] = {}
        self._next_sweep = clock() + SWEEP_SECONDS

    def hit(self, item: RateLimitItem, key: str) -> bool:
        """Count one request if the window has room; False (and nothing counted) if it has none."""
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        amount, period = item.amount, item.get_expiry()
        if self.strategy == "moving-window":
            times = self.stamps.get((amount, period))
            if times is None:
                times = self.stamps[(amount, period)] = {}
            stamps = times.get(key)
            if stamps is None:
                stamps = times[key] = deque(maxlen=amount)
            if len(stamps) == amount and now - stamps[0] <= period:
                return False
            stamps.append(now)
            return True
        table = self.counts.get((amount, period))
        if table is None:
            table = self.counts[(amount, period)] = {}
        state = table.get(key)
        if state is None:
            state = table[key] = [0.0, 0.0, 0.0]
        if self.strategy == "fixed-window":
            if now >= state[0]:  # [window end, count, -]
                state[0], state[1] = now + period, 0.0
            if state[1] >= amount:
                return False
            state[1] += 1
            return True
        _slide(state, now, period)  # [window index, previous window's count, this window's count]
        if _weighted(state, now, period) >= amount:
            return False
        state[2] += 1
        return True

    def test(self, item: RateLimitItem, key: str, cost: int = 1) -> bool:
        """Whether `cost` more hits would be counted (nothing is counted), as `limits`' `test(..., cost=)` decides."""
        now, amount, period = self.clock(), item.amount, item.get_expiry()
        if cost > amount:
            return False
        if self.strategy == "moving-window":
            stamps = self.stamps.get((amount, period), {}).get(key)
            room = amount - cost  # hits the window may already hold
            return stamps is None or len(stamps) <= room or now - stamps[-room - 1] > period
        state = self.counts.get((amount, period), {}).get(key)
        if state is None:
            return True
        if self.strategy == "fixed-window":
            return now >= state[0] or state[1] + cost <= amount
        state = list(state)  # a copy: asking must not move the window
        _slide(state, now, period)
        return _weighted(state, now, period) < amount - cost + 1

    def retry_after(self, item: RateLimitItem, key: str) -> float:
        """About how many seconds until one more hit would be counted (for Retry-After); 0 when it would be now."""
        if self.test(item, key):
            return 0.0
        now, amount, period = self.clock(), item.amount, item.get_expiry()
        if self.strategy == "moving-window":
            return self.stamps[(amount, period)][key][0] + period - now
        state = self.counts[(amount, period)][key]
        if self.strategy == "fixed-window":
            return state[0] - now
        state = list(state)
        _slide(state, now, period)
        index, previous, current = state
        end = (index + 1) * period
        if current >= amount:  # wait for the next window, where this window's count becomes the previous one
            return end - now + period * max(0.0, 1 - amount / current)
        # the previous window's share shrinks linearly over this one
        return max(0.0, end - period * (amount - current) / previous - now)

    def _sweep(self, now: float) -> None:
        """Drop the windows of keys that have not been hit for a whole period (they would count nothing)."""
        self._next_sweep = now + SWEEP_SECONDS
        for (_, period), times in self.stamps.items():
            for key in [key for key, stamps in times.items() if not stamps or now - stamps[-1] >= period]:
                del times[key]
        fixed = self.strategy == "fixed-window"
        for (_, period), table in self.counts.items():
            for key in [key for key, state in table.items() if _idle(fixed, state, now, period)]:
                del table[key]


def _slide(state: list[float], now: float, period: int) -> None:
    index = math.floor(now / period)
    if index != state[0]:
        state[1] = state[2] if index == state[0] + 1 else 0.0
        state[0], state[2] = index, 0.0


def _weighted(state: list[float], now: float, period: int) -> float:
    """limits' sliding-window-counter count: the previous window's count, weighted by how much of it still
    overlaps the last `period` seconds, plus this window's."""
    index, previous, current = state
    return previous * ((index + 1) * period - now) / period + current


def _idle(fixed: bool, state: list[float], now: float, period: int) -> bool:
    return now >= state[0] if fixed else math.floor(now / period) > state[0] + 1
