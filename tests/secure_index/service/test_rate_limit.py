"""Token buckets: burst then refusal with the right retry-after, refill over time, per-key
isolation, changed caps, bounded memory and thread safety (fake clock throughout)."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secure_index.service.rate_limit import SWEEP_INTERVAL_S, RateLimiter


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_burst_passes_then_the_next_request_learns_when_to_retry(clock: FakeClock) -> None:
    # Prepare: 60/min is one token per second
    limiter = RateLimiter(clock=clock)
    # Execute
    burst = [limiter.acquire("k", rate_per_minute=60, burst=5) for _ in range(5)]
    refused = limiter.acquire("k", rate_per_minute=60, burst=5)
    clock.advance(0.25)
    later = limiter.acquire("k", rate_per_minute=60, burst=5)
    # Assert
    assert burst == [0.0] * 5
    assert refused == pytest.approx(1.0)
    assert later == pytest.approx(0.75)


def test_a_refusal_takes_no_tokens(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    limiter.acquire("k", rate_per_minute=120, burst=1)
    for _ in range(10):
        assert limiter.acquire("k", rate_per_minute=120, burst=1) == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.acquire("k", rate_per_minute=120, burst=1) == 0.0


def test_a_refusal_streak_is_counted_and_reported_once_when_it_ends(clock: FakeClock) -> None:
    # Prepare: 60/min, burst 2, emptied
    limiter = RateLimiter(clock=clock)
    caps = {"rate_per_minute": 60, "burst": 2}
    passed = [limiter.check("k", **caps) for _ in range(2)]
    # Execute: five refusals, then a token refills
    refused = [limiter.check("k", **caps) for _ in range(5)]
    clock.advance(1.0)
    ended = limiter.check("k", **caps)
    clock.advance(1.0)
    next_one = limiter.check("k", **caps)
    # Assert
    assert [(v.allowed, v.refusals) for v in passed] == [(True, 0), (True, 0)]
    assert [v.refusals for v in refused] == [1, 2, 3, 4, 5]
    assert not any(v.allowed for v in refused)
    assert refused[0].wait == pytest.approx(1.0)
    assert (ended.allowed, ended.refusals) == (True, 5)
    assert (next_one.allowed, next_one.refusals) == (True, 0)


def test_a_bucket_with_an_unreported_streak_survives_the_sweep(clock: FakeClock) -> None:
    # Prepare: a key refused once, then idle until its bucket is full again
    limiter = RateLimiter(clock=clock)
    limiter.check("k", rate_per_minute=60, burst=1)
    limiter.check("k", rate_per_minute=60, burst=1)
    clock.advance(SWEEP_INTERVAL_S + 10)
    # Execute: a sweep runs when another key's bucket is created
    limiter.check("other", rate_per_minute=60, burst=1)
    back = limiter.check("k", rate_per_minute=60, burst=1)
    # Assert: the streak is still reported when the key returns
    assert (back.allowed, back.refusals) == (True, 1)


def test_tokens_refill_at_the_rate_up_to_the_burst(clock: FakeClock) -> None:
    # Prepare: 600/min = 10 tokens per second, bucket of 4, emptied
    limiter = RateLimiter(clock=clock)
    for _ in range(4):
        limiter.acquire("k", rate_per_minute=600, burst=4)
    # Execute: 0.2 s refills two tokens
    clock.advance(0.2)
    after_short = [limiter.acquire("k", rate_per_minute=600, burst=4) for _ in range(3)]
    # a long pause refills only up to the burst
    clock.advance(3600)
    after_long = [limiter.acquire("k", rate_per_minute=600, burst=4) for _ in range(5)]
    # Assert
    assert after_short[:2] == [0.0, 0.0]
    assert after_short[2] == pytest.approx(0.1)
    assert after_long[:4] == [0.0] * 4
    assert after_long[4] == pytest.approx(0.1)


def test_retry_after_is_exact_for_a_costly_request(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    assert limiter.acquire("k", rate_per_minute=60, burst=10, cost=7) == 0.0
    wait = limiter.acquire("k", rate_per_minute=60, burst=10, cost=5)
    assert wait == pytest.approx(2.0)
    clock.advance(wait)
    assert limiter.acquire("k", rate_per_minute=60, burst=10, cost=5) == 0.0


def test_keys_have_separate_buckets(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        limiter.acquire("a", rate_per_minute=60, burst=3)
    assert limiter.acquire("a", rate_per_minute=60, burst=3) > 0
    assert [limiter.acquire("b", rate_per_minute=60, burst=3) for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("b", rate_per_minute=60, burst=3) > 0


def test_forget_gives_a_key_a_fresh_bucket(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    limiter.acquire("k", rate_per_minute=60, burst=1)
    assert limiter.acquire("k", rate_per_minute=60, burst=1) > 0
    limiter.forget("k")
    limiter.forget("never-seen")
    assert limiter.acquire("k", rate_per_minute=60, burst=1) == 0.0


def test_lowered_caps_apply_at_once(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    limiter.acquire("k", rate_per_minute=60, burst=100)
    # the bucket held 99 tokens; the key's burst drops to 2
    assert [limiter.acquire("k", rate_per_minute=60, burst=2) for _ in range(3)][2] > 0


def test_a_clock_that_steps_back_refills_nothing(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    limiter.acquire("k", rate_per_minute=60, burst=1)
    clock.advance(-100)
    assert limiter.acquire("k", rate_per_minute=60, burst=1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "burst", "cost"),
    [(0, 5, 1.0), (-1, 5, 1.0), (60, 0, 1.0), (60, 5, 0.0), (60, 5, 6.0), (60, 5, -1.0)],
)
def test_invalid_caps_are_refused(clock: FakeClock, rate: int, burst: int, cost: float) -> None:
    with pytest.raises(ValueError, match="rate limit: need"):
        RateLimiter(clock=clock).acquire("k", rate_per_minute=rate, burst=burst, cost=cost)


def test_idle_full_buckets_are_evicted(clock: FakeClock) -> None:
    # Prepare: 5000 keys each take one token (1/s refill, so full again after 1 s)
    limiter = RateLimiter(clock=clock)
    for i in range(5000):
        limiter.acquire(f"idle-{i}", rate_per_minute=60, burst=10)
    busy = [limiter.acquire("busy", rate_per_minute=1, burst=3) for _ in range(3)]
    assert busy == [0.0] * 3
    # Execute: after the sweep interval, one new key triggers the sweep
    clock.advance(SWEEP_INTERVAL_S)
    limiter.acquire("newcomer", rate_per_minute=60, burst=10)
    # Assert: only the still-refilling bucket and the newcomer remain, and the busy key
    # keeps its state (1 token refilled in 60 s at 1/min, the next needs 60 s more)
    assert len(limiter) == 2
    assert limiter.acquire("busy", rate_per_minute=1, burst=3) == 0.0
    assert limiter.acquire("busy", rate_per_minute=1, burst=3) == pytest.approx(60.0)


def test_memory_stays_bounded_under_many_keys_without_time_passing(clock: FakeClock) -> None:
    # Buckets of keys that never used anything are full at once and swept when the
    # table doubles, so 100k one-off keys leave no more than the sweep threshold.
    limiter = RateLimiter(clock=clock)
    for i in range(100_000):
        clock.advance(0.001)
        limiter.acquire(f"k{i}", rate_per_minute=60_000, burst=2, cost=1)
    assert len(limiter) <= 2048


class YieldingClock(FakeClock):
    """A fake clock that lets other threads run each time it is read (widens races)."""

    def __call__(self) -> float:
        time.sleep(0)
        return self.now


class YieldingCost(float):
    """A request cost that lets other threads run whenever it is compared.

    ``tokens >= cost`` calls this reflected ``__le__`` (a float subclass on the right
    wins), so a limiter without a lock would be preempted between checking the bucket
    and taking from it, and allow more than the burst.
    """

    def __le__(self, other: object) -> bool:
        time.sleep(0)
        return float(self) <= other  # type: ignore[operator]


def test_many_threads_share_one_bucket_and_only_the_burst_passes() -> None:
    # Prepare: the clock does not move, so exactly `burst` requests may pass; threads
    # switch as often as possible, in particular inside acquire()
    limiter = RateLimiter(clock=YieldingClock())
    cost = YieldingCost(1.0)
    allowed: list[int] = []
    barrier = threading.Barrier(16)

    def hammer() -> None:
        barrier.wait()
        mine = sum(
            limiter.acquire("shared", rate_per_minute=60, burst=250, cost=cost) == 0.0
            for _ in range(100)
        )
        allowed.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        # Execute
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    # Assert
    assert sum(allowed) == 250


@settings(max_examples=100, deadline=None)
@given(
    rate=st.integers(1, 100_000),
    burst=st.integers(1, 1000),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=60),
)
def test_allowed_requests_never_exceed_burst_plus_refill(
    rate: int, burst: int, gaps: list[float]
) -> None:
    # Prepare
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    waits: list[float] = []
    # Execute
    for gap in gaps:
        clock.advance(gap)
        waits.append(limiter.acquire("k", rate_per_minute=rate, burst=burst))
    # Assert: the token-bucket bound, and a refusal never asks to wait beyond one token
    allowed = waits.count(0.0)
    assert allowed <= burst + rate / 60 * sum(gaps) + 1e-9
    assert all(0.0 <= w <= 60 / rate + 1e-9 for w in waits)
    assert allowed >= min(len(gaps), burst)
