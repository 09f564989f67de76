"""Query budgets: a fixed number of answered queries per window, persisted across restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from secure_index.service.credentials import CredentialStore
from secure_index.service.query_budget import QueryBudget

WINDOW_S = 3600.0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def credentials(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "credentials.sqlite")


def test_a_key_spends_its_budget_then_is_refused_until_the_window_closes(
    credentials: CredentialStore,
) -> None:
    # Prepare
    clock = FakeClock()
    budget = QueryBudget(credentials, clock=clock)
    # Execute
    charges = [budget.spend("k1", budget=3, window_s=WINDOW_S) for _ in range(3)]
    clock.now += 600
    refused = budget.spend("k1", budget=3, window_s=WINDOW_S)
    clock.now += WINDOW_S - 600  # the window opened at the first query closes now
    reopened = budget.spend("k1", budget=3, window_s=WINDOW_S)
    # Assert
    assert [(c.allowed, c.spent) for c in charges] == [(True, 1), (True, 2), (True, 3)]
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(WINDOW_S - 600)
    assert (reopened.allowed, reopened.spent) == (True, 1)


def test_keys_have_separate_budgets(credentials: CredentialStore) -> None:
    budget = QueryBudget(credentials, clock=FakeClock())
    assert budget.spend("k1", budget=1, window_s=WINDOW_S).allowed
    assert not budget.spend("k1", budget=1, window_s=WINDOW_S).allowed
    assert budget.spend("k2", budget=1, window_s=WINDOW_S).allowed


def test_a_restart_does_not_refill_the_budget(credentials: CredentialStore) -> None:
    # Prepare: the gateway spends the whole budget, then stops
    clock = FakeClock()
    first = QueryBudget(credentials, clock=clock)
    for _ in range(5):
        assert first.spend("k1", budget=5, window_s=WINDOW_S).allowed
    first.close()
    credentials.close()
    # Execute: a new process opens the same file
    restarted = QueryBudget(CredentialStore(credentials.path), clock=clock)
    after = restarted.spend("k1", budget=5, window_s=WINDOW_S)
    # Assert
    assert not after.allowed
    assert restarted.spent("k1", window_s=WINDOW_S) == 5


def test_a_refund_gives_one_unit_back(credentials: CredentialStore) -> None:
    budget = QueryBudget(credentials, clock=FakeClock())
    budget.spend("k1", budget=1, window_s=WINDOW_S)
    budget.refund("k1")
    assert budget.spend("k1", budget=1, window_s=WINDOW_S).allowed
    budget.refund("nobody")  # nothing to refund: nothing happens
    assert budget.spent("nobody", window_s=WINDOW_S) == 0


def test_two_gateways_on_one_file_never_overspend(credentials: CredentialStore) -> None:
    # Prepare: two budget objects (two connections, as two processes would have)
    clock = FakeClock()
    gateways = [QueryBudget(credentials, clock=clock), QueryBudget(credentials, clock=clock)]
    allowed: list[bool] = []
    lock = threading.Lock()

    def work(budget: QueryBudget) -> None:
        for _ in range(40):
            ok = budget.spend("k1", budget=50, window_s=WINDOW_S).allowed
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=work, args=(g,)) for g in gateways for _ in range(2)]
    # Execute
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Assert
    assert sum(allowed) == 50
    assert len(allowed) == 160
