"""`app.edge.windows` (per-process rate-limit counts) allows and refuses exactly as `limits`' MemoryStorage does."""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import limits.storage.memory
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from app.edge.windows import SWEEP_SECONDS, Strategy, Windows

REFERENCE: dict[Strategy, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
# Periods that are powers of two and steps of 1/8 s keep every clock value and weight exact in binary floating
# point, so a boundary case is the same case for both implementations.
ITEMS = [parse("3/second"), parse("4/2 seconds"), parse("2/4 seconds")]
ORIGIN = 1_048_576.0


class Clock:
    """One fake clock for both: `limits` reads `time.time()`, the windows read the clock they are given."""

    def __init__(self) -> None:
        self.now = ORIGIN

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=24).map(lambda eighths: eighths / 8),  # seconds before this step
        st.sampled_from(["hit", "test"]),
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(ITEMS),
    ),
    max_size=60,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(strategy=st.sampled_from(list(REFERENCE)), steps=steps)
def test_windows_decide_every_hit_and_test_as_limits_does(
    strategy: Strategy, steps: list[tuple[float, str, str, RateLimitItem]]
) -> None:
    clock = Clock()
    with mock.patch.object(limits.storage.memory, "time", clock):
        storage = MemoryStorage()
        reference: Any = REFERENCE[strategy](storage)
        windows = Windows(strategy, clock=clock)
        for number, (wait, op, key, item) in enumerate(steps):
            clock.now += wait
            ours = windows.hit(item, key) if op == "hit" else windows.test(item, key)
            theirs = reference.hit(item, key) if op == "hit" else reference.test(item, key)
            assert ours == theirs, f"step {number}: {op} {item} for {key} at +{clock.now - ORIGIN:g} s"
            if op == "test" and ours:
                assert windows.retry_after(item, key) == 0
            elif not ours:
                assert windows.retry_after(item, key) >= 0  # 0 only exactly at a window's edge
        storage.reset()


@pytest.mark.parametrize("strategy", list(REFERENCE))
def test_retry_after_is_when_the_next_hit_is_counted(strategy: Strategy) -> None:
    clock = Clock()
    windows, item = Windows(strategy, clock=clock), parse("3/2 seconds")
    while windows.hit(item, "k"):
        clock.now += 0.25
    wait = windows.retry_after(item, "k")
    assert 0 < wait <= 2 * 2  # never more than two periods (sliding-window-counter's worst case)
    clock.now += wait - 1 / 64
    assert not windows.hit(item, "k")
    clock.now += 1 / 32
    assert windows.hit(item, "k")
    assert math.isclose(windows.retry_after(item, "other"), 0)


@pytest.mark.parametrize("strategy", list(REFERENCE))
def test_idle_keys_are_swept_and_busy_ones_kept(strategy: Strategy) -> None:
    clock = Clock()
    windows, item = Windows(strategy, clock=clock), parse("2/second")
    windows.hit(item, "idle")
    clock.now += SWEEP_SECONDS - 0.25
    windows.hit(item, "busy")
    clock.now += 0.5  # past the sweep time: "idle" was last hit a minute ago, "busy" half a second ago
    windows.hit(item, "busy")
    tables = windows.stamps if strategy == "moving-window" else windows.counts
    (table,) = tables.values()
    assert set(table) == {"busy"}
    busy = table["busy"]
    counted = len(busy) if strategy == "moving-window" else busy[1] + (busy[2] if strategy != "fixed-window" else 0)
    assert counted == 2  # the sweep kept both of busy's hits
