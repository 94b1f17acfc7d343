"""Load from many callers, each within the per-caller rate limit users get by default.

The project limits each caller (`RATE_LIMIT__DEFAULT`, 120/minute by default). One token cannot load a server at
that limit, and lifting the limit would measure a server nobody runs (it once hid a real bug). So the load is spread
over enough callers (distinct users, one token each) that none of them reaches the default limit, and the limiter
counts every request exactly as in production. Every target gets the same callers, so the baselines validate the
same variety of tokens.
"""

from __future__ import annotations

import math

MAX_RPS = 4000
"""Requests per second no target reaches on this machine (the fastest measured about 2,800). A faster run would
meet the limit: its 429s make the bench refuse to report, loudly, never a silently throttled number."""
HEADROOM = 0.8
"""Each caller is planned to use at most this share of its limit (verification calls come on top)."""
SETUP_SECONDS = 5.0
"""Start-up, first call and verification around each measured run, counted as if at full rate."""
REQUESTS_PER_SESSION = 2  # initialize + notifications/initialized


def default_limit() -> tuple[int, float]:
    """(requests, seconds) of the project's default per-caller limit, read from its settings' default."""
    from limits import parse

    from app.settings.serving import RateLimitSettings

    item = parse(str(RateLimitSettings.model_fields["default"].default))
    return item.amount, float(item.get_expiry())


def callers_needed(warm_s: float, measure_s: float, sessions: int) -> int:
    """How many callers keep each one under the default limit for one server's life (throughput or idle sessions)."""
    amount, window = default_limit()
    per_window = MAX_RPS * min(warm_s + measure_s + SETUP_SECONDS, window)
    budget = HEADROOM * amount
    return max(math.ceil(per_window / budget), math.ceil(sessions * REQUESTS_PER_SESSION / budget), 1)
