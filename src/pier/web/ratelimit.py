"""Token buckets per client address: `rate` requests a second on average, bursts up to `burst`.

Per process (several pier processes each allow the rate; put a shared limiter in front if that matters).
The table of buckets is bounded: the least recently seen addresses are forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from pier.web import metrics


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def wait_time(self, key: str) -> float:
        """0 if the request may go now (and count it), else how many seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait


class RateLimits:
    """The two limits pier applies: to anonymous callers and to callers with credentials."""

    def __init__(self, anonymous: float, authenticated: float, burst: int) -> None:
        self.anonymous = RateLimiter(anonymous, burst)
        self.authenticated = RateLimiter(authenticated, burst)

    def wait_time(self, address: str, authenticated: bool) -> float:
        wait = (self.authenticated if authenticated else self.anonymous).wait_time(address)
        if wait:
            metrics.RATE_LIMITED.inc()
        return wait
