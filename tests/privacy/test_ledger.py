from __future__ import annotations

import json
import logging
from pathlib import Path

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from opacus.accountants import PRVAccountant

from embedding_core.errors import FedembedError
from privacy import (
    ACCOUNTANT,
    DEFAULT_UNIT,
    BudgetExceededError,
    DPSGDAccountant,
    Observer,
    PrivacyLedger,
)
from privacy.analysis import PrivacyParameterError, epsilon_for_mu, steps_mu
from privacy.ledger_file import CONVERSION

NODE = "hospital-a"
DELTA = 1e-5
ROUND = {"noise_multiplier": 1.1, "sample_rate": 0.004, "steps": 500}
ENTRY_KEYS = {
    "run_id",
    "round",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "epsilon_after",
    "timestamp",
    "observer",
}


def _pld_epsilon(*charges: tuple[float, float, int]) -> float:
    """dp-accounting's own PLD accountant, one event per charge at its finer default grid."""
    accountant = pld_privacy_accountant.PLDAccountant()
    for noise, rate, steps in charges:
        event = dp_accounting.GaussianDpEvent(noise)
        if rate < 1:
            event = dp_accounting.PoissonSampledDpEvent(rate, event)
        accountant.compose(event, steps)
    return float(accountant.get_epsilon(DELTA))


def _assert_pld(ledger_epsilon: float, reference: float) -> None:
    """The ledger's coarser pessimistic grid reads at most 0.002 above the reference."""
    assert reference - 1e-9 <= ledger_epsilon <= reference + 2e-3


def _open(path: Path, *, max_epsilon: float = 8.0, **kwargs: object) -> PrivacyLedger:
    params: dict[str, object] = {"node_id": NODE, "max_epsilon": max_epsilon, "delta": DELTA}
    params.update(kwargs)
    return PrivacyLedger.open(path, **params)  # type: ignore[arg-type]


def test_new_ledger_is_empty_and_written(tmp_path: Path) -> None:
    path = tmp_path / "node" / "ledger.json"

    ledger = _open(path)

    assert path.is_file()
    assert ledger.spent_epsilon() == 0.0
    assert ledger.remaining() == 8.0
    assert ledger.entries == []
    assert json.loads(path.read_text())["entries"] == []


def test_charges_persist_across_reopen_and_compose_over_runs(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    first = ledger.charge(**ROUND, run_id="run-1", round=0)
    ledger.charge(**ROUND, run_id="run-1", round=1)

    reopened = _open(path)
    last = reopened.charge(
        noise_multiplier=1.3, sample_rate=0.01, steps=200, run_id="run-2", round=0
    )

    _assert_pld(first, _pld_epsilon((1.1, 0.004, 500)))
    _assert_pld(last, _pld_epsilon((1.1, 0.004, 1_000), (1.3, 0.01, 200)))
    third = _open(path)
    assert third.spent_epsilon() == pytest.approx(last)
    assert [(e["run_id"], e["round"]) for e in third.entries] == [
        ("run-1", 0),
        ("run-1", 1),
        ("run-2", 0),
    ]
    assert third.entries[-1]["epsilon_after"] == pytest.approx(last)
    assert third.remaining() == pytest.approx(8.0 - last)


def test_preview_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    ledger.charge(**ROUND, run_id="run-1", round=0)
    before = path.read_bytes()

    preview = ledger.preview(**ROUND)

    assert preview > ledger.spent_epsilon() > 0
    assert path.read_bytes() == before
    assert len(ledger.entries) == 1


def test_charge_over_budget_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path, max_epsilon=0.5)
    spent = ledger.charge(**ROUND, run_id="run-1", round=0)
    before = path.read_bytes()
    would_reach = ledger.preview(**ROUND)

    with pytest.raises(BudgetExceededError) as info:
        ledger.charge(**ROUND, run_id="run-1", round=1)

    error = info.value
    assert isinstance(error, FedembedError)
    assert error.node_id == NODE
    assert error.spent_epsilon == pytest.approx(spent)
    assert error.requested_epsilon == pytest.approx(would_reach)
    assert spent <= 0.5 < would_reach
    assert error.max_epsilon == 0.5
    assert error.delta == DELTA
    message = str(error)
    assert NODE in message
    assert f"{spent:.4f}" in message
    assert f"{would_reach:.4f}" in message
    assert "0.5000" in message
    assert "node config" in message
    assert "stop training" in message
    assert path.read_bytes() == before
    assert len(ledger.entries) == 1
    assert ledger.spent_epsilon() == pytest.approx(spent)
    # Only the ledger and its inter-process lock file: no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json", "ledger.json.lock"]


def test_raised_budget_in_config_applies_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path, max_epsilon=0.5)
    ledger.charge(**ROUND, run_id="run-1", round=0)

    raised = _open(path, max_epsilon=0.6)
    after = raised.charge(**ROUND, run_id="run-1", round=1)

    assert 0.5 < after <= 0.6
    assert json.loads(path.read_text())["max_epsilon"] == 0.6


def test_file_is_valid_json_after_every_charge_and_holds_no_data(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    # A crash in the middle of an earlier write leaves at most a stray temporary file.
    stray = tmp_path / ".ledger.json.crashed.tmp"
    stray.write_text('{"schema": "fedembed.priv')

    for round_number in range(4):
        ledger.charge(**ROUND, run_id="run-1", round=round_number)
        document = json.loads(path.read_text())

        assert len(document["entries"]) == round_number + 1
        assert all(set(entry) == ENTRY_KEYS for entry in document["entries"])

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        stray.name,
        "ledger.json",
        "ledger.json.lock",
    ]
    assert len(_open(path).entries) == 4


def test_two_ledger_objects_on_one_file_never_lose_a_charge(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    first = _open(path)
    second = _open(path)

    first.charge(**ROUND, run_id="run-1", round=0)
    after = second.charge(**ROUND, run_id="run-1", round=1)

    assert len(_open(path).entries) == 2
    _assert_pld(after, _pld_epsilon((1.1, 0.004, 1_000)))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "invalid JSON"),
        ('{"schema": "fedembed.privacy_ledger", "entr', "invalid JSON"),
        ("[]", "not a JSON object"),
        ('{"schema": "something-else"}', "schema"),
        ("ENTRIES_NOT_A_LIST", "entries"),
        ("NEGATIVE_STEPS", "steps must be an integer >= 0"),
        ("MISSING_SAMPLE_RATE", "lacks sample_rate"),
    ],
)
def test_corrupt_file_is_a_clear_error_and_is_left_alone(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "ledger.json"
    valid = _open(path)
    valid.charge(**ROUND, run_id="run-1", round=0)
    document = json.loads(path.read_text())
    if content == "ENTRIES_NOT_A_LIST":
        document["entries"] = {"0": document["entries"][0]}
        content = json.dumps(document)
    elif content == "NEGATIVE_STEPS":
        document["entries"][0]["steps"] = -3
        content = json.dumps(document)
    elif content == "MISSING_SAMPLE_RATE":
        del document["entries"][0]["sample_rate"]
        content = json.dumps(document)
    path.write_text(content)

    with pytest.raises(FedembedError) as info:
        _open(path)

    message = str(info.value)
    assert str(path) in message
    assert problem in message
    assert "Fix:" in message
    assert "backup" in message
    assert path.read_text() == content


def test_corrupt_file_is_detected_at_charge_time_too(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    path.write_text("not json")

    with pytest.raises(FedembedError, match="corrupt"):
        ledger.charge(**ROUND, run_id="run-1", round=0)

    assert path.read_text() == "not json"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"delta": 1e-6}, "delta"),
        ({"unit": "patient"}, "privacy unit"),
        ({"node_id": "bank-b"}, "belongs to node"),
    ],
)
def test_reopening_with_another_delta_unit_or_node_is_refused(
    tmp_path: Path, change: dict[str, object], needle: str
) -> None:
    path = tmp_path / "ledger.json"
    _open(path).charge(**ROUND, run_id="run-1", round=0)
    before = path.read_bytes()

    with pytest.raises(FedembedError) as info:
        _open(path, **change)

    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_summary_states_unit_delta_accountant_and_composition(tmp_path: Path) -> None:
    ledger = _open(tmp_path / "ledger.json")
    spent = ledger.charge(**ROUND, run_id="run-1", round=0)
    ledger.charge(**ROUND, run_id="run-2", round=0)

    summary = ledger.summary()

    assert summary["unit"] == DEFAULT_UNIT
    assert summary["delta"] == DELTA
    assert summary["accountant"] == ACCOUNTANT
    assert summary["composition"].startswith("PLD composition")  # ROUND is subsampled
    assert summary["conversion"] == CONVERSION
    assert summary["observer"] == Observer.FELLOW_MEMBER
    assert "fellow-member" in summary["composition"]
    assert summary["max_epsilon"] == 8.0
    assert summary["entries"] == 2
    assert summary["runs"] == ["run-1", "run-2"]
    assert summary["spent_epsilon"] > spent
    assert "2 charges" in summary["composition"]
    json.dumps(summary)


def test_charge_is_logged_with_its_operation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = _open(tmp_path / "ledger.json")

    with caplog.at_level(logging.INFO, logger="privacy.ledger"):
        ledger.charge(**ROUND, run_id="run-1", round=0)

    assert any(
        r.getMessage().startswith(f"charge: node={NODE}") and "epsilon_after=" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"max_epsilon": 0.0}, {"max_epsilon": -1.0}, {"delta": 0.0}, {"delta": 1.5}],
)
def test_bad_budget_settings_are_refused(tmp_path: Path, kwargs: dict[str, object]) -> None:
    path = tmp_path / "ledger.json"

    with pytest.raises(PrivacyParameterError, match="Expected:"):
        _open(path, **kwargs)

    assert not path.exists()


def test_bad_charge_parameters_are_refused_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    before = path.read_bytes()

    with pytest.raises(PrivacyParameterError, match="sample_rate"):
        ledger.charge(noise_multiplier=1.0, sample_rate=0.0, steps=10, run_id="r", round=0)
    with pytest.raises(PrivacyParameterError, match="round"):
        ledger.charge(**ROUND, run_id="r", round=-1)

    assert path.read_bytes() == before


def test_full_batch_charges_compose_exactly_across_rounds(tmp_path: Path) -> None:
    # Prepare: the distributed-DP recipe, one full-batch step per round.
    ledger = _open(tmp_path / "ledger.json")

    # Execute: 100 rounds at the noise the exact curve calibrates for epsilon 8 (6.0023).
    for server_round in range(1, 101):
        spent = ledger.charge(
            noise_multiplier=6.01, sample_rate=1.0, steps=1, run_id="run", round=server_round
        )

    # Assert: the charge is the exact GDP epsilon of 100 steps, just under the budget.
    exact = epsilon_for_mu(mu=steps_mu(noise_multiplier=6.01, steps=100), delta=DELTA)
    assert spent == pytest.approx(exact, rel=1e-9)
    assert 7.9 < spent <= 8.0
    assert ledger.summary()["composition"].startswith("exact Gaussian-DP composition")
    with pytest.raises(BudgetExceededError):
        ledger.check(noise_multiplier=6.01, sample_rate=1.0, steps=1)


def test_ledger_written_with_the_rdp_label_still_opens(tmp_path: Path) -> None:
    # Prepare: a ledger file from before exact full-batch accounting.
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    ledger.charge(noise_multiplier=7.0, sample_rate=1.0, steps=50, run_id="old", round=1)
    document = json.loads(path.read_text())
    document["accountant"] = "rdp"
    path.write_text(json.dumps(document))

    # Execute
    reopened = _open(path)
    reopened.charge(noise_multiplier=7.0, sample_rate=1.0, steps=50, run_id="new", round=1)

    # Assert: both charges are composed; the file now carries the current label.
    assert len(reopened.entries) == 2
    assert reopened.spent_epsilon() == pytest.approx(
        epsilon_for_mu(mu=steps_mu(noise_multiplier=7.0, steps=100), delta=DELTA)
    )
    assert json.loads(path.read_text())["accountant"] == ACCOUNTANT


def test_a_mixed_history_is_composed_with_pld_not_charged_at_rdp(tmp_path: Path) -> None:
    # Prepare: 50 distributed-DP rounds (full-batch, noise 6.01), then 10 rounds of
    # subsampled DP-SGD (15 steps each at rate 1/15, noise 1.0) on the same records.
    ledger = _open(tmp_path / "ledger.json", max_epsilon=9.0)
    for server_round in range(50):
        ledger.charge(
            noise_multiplier=6.01, sample_rate=1.0, steps=1, run_id="ddp", round=server_round
        )
    rdp = DPSGDAccountant()
    rdp.step(noise_multiplier=6.01, sample_rate=1.0, steps=50)
    prv = PRVAccountant()
    prv.history = [(6.01, 1.0, 50)]

    # Execute
    for server_round in range(10):
        spent = ledger.charge(
            noise_multiplier=1.0, sample_rate=1 / 15, steps=15, run_id="sgd", round=server_round
        )
    rdp.step(noise_multiplier=1.0, sample_rate=1 / 15, steps=150)
    prv.history.append((1.0, 1 / 15, 150))

    # Assert: PLD agrees with dp-accounting's own PLD and with Opacus's PRV accountant,
    # while the former RDP composition charged 0.76 more for the same history.
    _assert_pld(spent, _pld_epsilon((6.01, 1.0, 50), (1.0, 1 / 15, 150)))
    assert spent == pytest.approx(prv.get_epsilon(delta=DELTA), abs=0.03)
    assert spent == pytest.approx(7.98, abs=0.01)
    assert rdp.get_epsilon(DELTA) == pytest.approx(8.74, abs=0.01)
    assert ledger.summary()["composition"].startswith("PLD composition of all 60 charges")


def test_entries_without_an_observer_load_as_the_coordinators_view(tmp_path: Path) -> None:
    # Prepare: a ledger file written before entries named their observer.
    path = tmp_path / "ledger.json"
    _open(path).charge(noise_multiplier=7.0, sample_rate=1.0, steps=50, run_id="old", round=1)
    document = json.loads(path.read_text())
    del document["entries"][0]["observer"]
    document["accountant"], document["conversion"] = "gdp-full-batch+rdp", "balle2020"
    path.write_text(json.dumps(document))

    # Execute
    reopened = _open(path)
    reopened.charge(
        noise_multiplier=7.0,
        sample_rate=1.0,
        steps=50,
        run_id="new",
        round=1,
        observer=Observer.FELLOW_MEMBER,
    )

    # Assert: the old charge held for the coordinator only, so the total does too.
    assert [e["observer"] for e in reopened.entries] == ["coordinator", "fellow-member"]
    assert reopened.observer() == Observer.COORDINATOR
    summary = reopened.summary()
    assert summary["observer"] == "coordinator"
    assert "fellow-member" not in summary["holds_for"]
    saved = json.loads(path.read_text())
    assert [e["observer"] for e in saved["entries"]] == ["coordinator", "fellow-member"]
    assert (saved["accountant"], saved["conversion"]) == (ACCOUNTANT, CONVERSION)


def test_an_unknown_observer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = _open(path)
    before = path.read_bytes()

    with pytest.raises(PrivacyParameterError, match="observer"):
        ledger.charge(**ROUND, run_id="r", round=0, observer="neighbour")  # type: ignore[arg-type]

    assert path.read_bytes() == before
