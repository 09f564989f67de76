"""Per-key token-bucket rate limiting for the query gateway.

Algorithm: the token bucket (J. Turner, "New directions in communications (or which way
to the information age?)", IEEE Communications Magazine 24(10), 1986; the "leaky bucket
as a meter" of ITU-T I.371 / RFC 2697). Each key owns a bucket of capacity ``burst``
that refills continuously at ``rate_per_minute / 60`` tokens per second; a request of
``cost`` tokens passes when the bucket holds that many, and takes them. A refused
request takes nothing and learns how long until enough tokens will have refilled (the
gateway's ``Retry-After``).

Memory stays bounded: a bucket that has refilled to capacity is the same as a bucket
that does not exist (a new key starts full), so full buckets are dropped by a sweep
that runs at most once per :data:`SWEEP_INTERVAL_S` of the clock and whenever the
number of buckets doubles. What remains is one small entry per key that was active
within its refill time (``burst / rate`` seconds), at most one per issued key.

Each bucket also counts the refusals of the current *streak* (refusals since the key's
last allowed request), so the gateway can audit the first refusal of a streak and a
summary when it ends instead of every refused request (:meth:`RateLimiter.check`). A
bucket with an unreported streak is kept by the sweep until its key returns.

One lock guards all buckets; :meth:`RateLimiter.acquire` does O(1) work under it
(a sweep is O(buckets), amortised over at least as many calls).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SWEEP_INTERVAL_S", "RateLimiter", "RateVerdict"]

logger = logging.getLogger(__name__)

SECONDS_PER_MINUTE = 60.0
SWEEP_INTERVAL_S = 60.0
_MIN_SWEEP_SIZE = 1024


@dataclass
class _Bucket:
    tokens: float
    updated: float
    per_second: float
    burst: float
    refused: int = 0  # refusals since the key's last allowed request

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)  # a clock that steps back refills nothing
        self.tokens = min(self.burst, self.tokens + elapsed * self.per_second)
        self.updated = now

    def full_at(self, now: float) -> bool:
        elapsed = max(0.0, now - self.updated)
        return self.tokens + elapsed * self.per_second >= self.burst and not self.refused


@dataclass(frozen=True)
class RateVerdict:
    """The limiter's answer to one request.

    Attributes:
        wait: 0.0 when allowed (its tokens were taken), else the seconds until it would be.
        refusals: For a refusal, its number in the key's current streak (1 for the first
            refusal since the key's last allowed request). For an allowed request, the
            length of the streak it ends (0 when the previous request was allowed too).
    """

    wait: float
    refusals: int

    @property
    def allowed(self) -> bool:
        """Whether the request passes."""
        return self.wait == 0.0


class RateLimiter:
    """Token buckets keyed by API key id, safe to share between threads.

    Args:
        clock: Monotonic seconds (injectable for tests); default :func:`time.monotonic`.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = clock()
        self._sweep_size = _MIN_SWEEP_SIZE

    def acquire(self, key: str, *, rate_per_minute: int, burst: int, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them.

        The wait of :meth:`check`: 0.0 when allowed, else the seconds until it would be.
        """
        return self.check(key, rate_per_minute=rate_per_minute, burst=burst, cost=cost).wait

    def check(
        self, key: str, *, rate_per_minute: int, burst: int, cost: float = 1.0
    ) -> RateVerdict:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them, counting refusals.

        The bucket follows the caps passed now (a key whose caps changed gets them at
        once; its tokens are clipped to the new ``burst``).

        Args:
            key: Whose bucket (the API key id).
            rate_per_minute: Sustained rate, tokens per minute.
            burst: Capacity of the bucket.
            cost: Tokens this request needs (at most ``burst``).

        Returns:
            The verdict: its ``wait`` is 0.0 when the request is allowed (its tokens are
            taken), else the seconds until it would be allowed (nothing is taken; round
            up for ``Retry-After``); its ``refusals`` count the key's refusal streak.

        Raises:
            ValueError: When the rate, burst or cost is not positive, or cost > burst.
        """
        if rate_per_minute <= 0 or burst <= 0 or not 0 < cost <= burst:
            raise ValueError(
                f"rate limit: need rate_per_minute > 0, burst > 0 and 0 < cost <= burst, "
                f"got rate_per_minute={rate_per_minute}, burst={burst}, cost={cost}"
            )
        per_second = rate_per_minute / SECONDS_PER_MINUTE
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                self._maybe_sweep(now)  # before adding: the new bucket is full, too
                bucket = _Bucket(float(burst), now, per_second, float(burst))
                self._buckets[key] = bucket
            else:
                bucket.refill(now)
                bucket.per_second = per_second
                bucket.burst = float(burst)
                bucket.tokens = min(bucket.tokens, bucket.burst)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                ended, bucket.refused = bucket.refused, 0
                return RateVerdict(0.0, ended)
            bucket.refused += 1
            return RateVerdict((cost - bucket.tokens) / per_second, bucket.refused)

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (e.g. after revoking the key)."""
        with self._lock:
            self._buckets.pop(key, None)

    def __len__(self) -> int:
        """Number of buckets held (keys recently active and not yet refilled)."""
        with self._lock:
            return len(self._buckets)

    def _maybe_sweep(self, now: float) -> None:
        """Drop full buckets if a sweep is due (caller holds the lock)."""
        if now - self._last_sweep < SWEEP_INTERVAL_S and len(self._buckets) < self._sweep_size:
            return
        before = len(self._buckets)
        self._buckets = {k: b for k, b in self._buckets.items() if not b.full_at(now)}
        self._last_sweep = now
        self._sweep_size = max(_MIN_SWEEP_SIZE, 2 * len(self._buckets))
        logger.debug(
            "rate limit: swept %d idle buckets, %d left",
            before - len(self._buckets),
            len(self._buckets),
        )
