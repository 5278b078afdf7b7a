"""Pacing for batch jobs: a rate limit on request starts, and the pause after a 429.

Both live in the process that runs :func:`llmproviders.batch`, which decides when every
request of the job starts (first attempts and retries alike), whatever executor runs
them. So the limit holds across all workers, threads, processes or cluster nodes, and a
``Retry-After`` seen by one worker holds back every other.

- :class:`RateLimiter` is a token bucket: ``rate`` starts per second, spread evenly,
  with a burst of at most one second's worth (``"300/min"`` is 5 per second: at most 5
  at once, then one every 0.2 s).
- :class:`Pauses` remembers, per target (provider and host), until when a 429's
  ``Retry-After`` asked everyone to wait.

Example usage::

    limiter = RateLimiter(parse_rate("60/min"))
    wait = limiter.take(time.monotonic())   # 0.0: start now (counted); else seconds to wait
"""

from __future__ import annotations

import math
import re
from typing import Dict, Hashable, Optional, Union

from ._exceptions import InvalidArgumentError

__all__ = ["RateLimiter", "Pauses", "parse_rate"]

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_EPSILON = 1e-9
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*/\s*([a-z]+?)s?\s*$")


def parse_rate(rate_limit: Union[str, int, float]) -> float:
    """Requests per second from ``"N/s"``, ``"N/min"`` or ``"N/h"`` (also ``"N/sec"``,
    ``"N/minute"``, ``"N/hour"``), or from a number (per second)."""
    if isinstance(rate_limit, bool):
        value = None
    elif isinstance(rate_limit, (int, float)):
        value = float(rate_limit)
    elif isinstance(rate_limit, str):
        match = _RATE.match(rate_limit.lower())
        unit = _UNITS.get(match.group(2)) if match else None
        value = float(match.group(1)) / unit if match and unit else None
    else:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(
            f"rate_limit must be a positive rate such as '60/min', '5/s' or '1000/h' (or a number per second), "
            f"not {rate_limit!r}"
        )
    return value


class RateLimiter:
    """A token bucket over request starts: ``rate`` per second, holding at most one
    second's worth (and at least one start). It starts full. Not thread-safe: the
    batch's scheduler is its only user."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._updated: Optional[float] = None

    def take(self, now: float) -> float:
        """Count a start at ``now`` and return 0.0 if one is allowed; otherwise count
        nothing and return the seconds until one is."""
        if self._updated is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0 - _EPSILON:  # (waiting the time it said must be enough, rounding or not)
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Pauses:
    """Until when each target must not be sent anything (after a 429's ``Retry-After``)."""

    def __init__(self) -> None:
        self._until: Dict[Hashable, float] = {}

    def pause(self, target: Hashable, until: float) -> None:
        """Hold ``target`` back until ``until`` (a later pause already set wins)."""
        if until > self._until.get(target, -math.inf):
            self._until[target] = until

    def left(self, target: Hashable, now: float) -> float:
        """Seconds ``target`` is still paused at ``now`` (0.0: not paused)."""
        until = self._until.get(target)
        if until is None:
            return 0.0
        if until <= now:
            del self._until[target]
            return 0.0
        return until - now
