"""A check's time share against a clock the test drives (no wall-clock limits)."""

from __future__ import annotations

import pytest

from embedding_core.time_share import TimeShare


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _take(share: TimeShare, clock: Clock, cost: float, limit: int = 10_000, step: int = 1) -> int:
    """Items taken when each costs ``cost`` seconds and the loop asks before each step."""
    done = 0
    while done < limit and share.more(done, step):
        clock.now += cost * step
        done += step
    return done


def test_items_are_taken_while_the_next_one_fits() -> None:
    # Prepare
    clock = Clock()
    share = TimeShare(10.0, floor=2, clock=clock)
    # Execute: 1.5 s an item; the 6th would end at 9 s, the 7th at 10.5 s
    taken = _take(share, clock, 1.5)
    # Assert
    assert taken == 6


def test_the_floor_is_taken_whatever_it_costs() -> None:
    clock = Clock()
    share = TimeShare(1.0, floor=3, clock=clock)
    assert _take(share, clock, 5.0) == 3


def test_a_faster_machine_gets_a_larger_sample() -> None:
    slow_clock, fast_clock = Clock(), Clock()
    slow = _take(TimeShare(30.0, floor=5, clock=slow_clock), slow_clock, 0.3)
    fast = _take(TimeShare(30.0, floor=5, clock=fast_clock), fast_clock, 0.1)
    assert (slow, fast) == (100, 300)


def test_steps_of_several_items_never_overrun_the_share() -> None:
    # A batch of 50 probes is asked for as one step: the batch that would end past the
    # share is not started.
    clock = Clock()
    share = TimeShare(40.0, floor=50, clock=clock)
    taken = _take(share, clock, 0.34, step=50)
    assert taken == 100
    assert clock.now - 100.0 <= 40.0


def test_set_up_before_the_first_item_is_not_charged() -> None:
    clock = Clock()
    share = TimeShare(10.0, clock=clock)
    assert share.more(0)  # the clock starts here
    clock.now += 4.0
    assert share.more(1)  # 4 s for one: a second ends at 8 s
    clock.now += 4.0
    assert not share.more(2)  # a third would end at 12 s


@pytest.mark.parametrize(("seconds", "floor"), [(0.0, 1), (-1.0, 1), (5.0, 0)])
def test_a_share_without_time_or_items_is_refused(seconds: float, floor: int) -> None:
    with pytest.raises(ValueError, match="seconds > 0 and floor >= 1"):
        TimeShare(seconds, floor=floor)
