"""The release's membership bound comes from its manifest, saved and loaded as published."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant

from audit.membership_bound import release_auc_bound
from embedding_core.adapter import Adapter

DELTA = 1e-5


def _released(folder: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` after the adapter save/load round trip the audit reads it through."""
    Adapter(8, side="query", seed=0).save(
        folder, base_model_id="test-model", base_model_fingerprint="0" * 16, metadata=metadata
    )
    return Adapter.load(folder).metadata


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _rounds(mechanisms: dict[str, tuple[float, float, int]], rounds: int) -> list[dict[str, Any]]:
    return [
        {
            "round": r,
            "nodes": {
                node: {"epsilon": 1.0, "noise_multiplier": s, "sample_rate": q, "steps": t}
                for node, (s, q, t) in mechanisms.items()
            }
            | {"node-c": {"error": "budget exceeded"}},
        }
        for r in range(1, rounds + 1)
    ]


def test_the_recorded_full_batch_mechanism_gives_the_exact_gdp_bound(tmp_path: Path) -> None:
    # Prepare: five rounds of 10 full-batch steps; node-a at sigma 4, node-b at sigma 5.
    metadata = _released(
        tmp_path,
        {
            "dp_enabled": True,
            "target_delta": DELTA,
            "per_node_epsilon": {"node-a": 7.9, "node-b": 6.0},
            "ledger": {
                "sample_level": {"holds_for": ["outsider", "fellow-member"]},
                "rounds": _rounds({"node-a": (4.0, 1.0, 10), "node-b": (5.0, 1.0, 10)}, 5),
            },
        },
    )
    # Execute
    bound = release_auc_bound(metadata)
    # Assert: node-a's mu = sqrt(50) / 4, and AUC <= Phi(mu / sqrt 2) = Phi(1.25) = 0.8944.
    assert bound.mu == pytest.approx(math.sqrt(50) / 4, rel=1e-12)
    assert bound.auc_bound == pytest.approx(_phi(1.25), rel=1e-12)
    assert bound.auc_bound == pytest.approx(0.8944, abs=1e-4)
    assert "exact" in bound.basis
    assert "node-a" in bound.basis
    assert "outsider, fellow-member" in bound.basis


def test_an_epsilon_alone_gives_the_mu_of_the_full_batch_mechanism_behind_it(
    tmp_path: Path,
) -> None:
    # Prepare: the worst node spent what dp-accounting's PLD gives 50 full-batch steps at
    # sigma 4 (mu = sqrt(50) / 4); the manifest records only that epsilon.
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(dp_accounting.GaussianDpEvent(4.0), 50)
    spent = pld.get_epsilon(DELTA)
    metadata = _released(
        tmp_path,
        {
            "target_delta": DELTA,
            "dp_noise_shares": 3,
            "per_node_epsilon": {"node-a": spent, "node-b": spent / 2},
        },
    )
    # Execute
    bound = release_auc_bound(metadata)
    # Assert: the tightest mu consistent with (epsilon, delta) recovers the mechanism's.
    assert bound.epsilon == pytest.approx(spent)
    assert bound.mu == pytest.approx(math.sqrt(50) / 4, rel=2e-3)
    assert bound.auc_bound == pytest.approx(_phi(1.25), abs=1e-3)
    assert "added no noise share" in bound.basis  # a manifest silent on its observers


def test_a_subsampled_mechanism_falls_back_to_the_epsilon_and_says_so(tmp_path: Path) -> None:
    metadata = _released(
        tmp_path,
        {
            "dp_enabled": True,
            "target_delta": DELTA,
            "per_node_epsilon": {"node-a": 3.0},
            "ledger": {"rounds": _rounds({"node-a": (1.0, 0.1, 100)}, 2)},
        },
    )

    bound = release_auc_bound(metadata)

    assert bound.epsilon == 3.0
    assert bound.auc_bound is not None
    assert bound.auc_bound > 0.5
    assert "not a proof" in bound.basis


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"dp_enabled": False, "target_delta": DELTA, "rounds": 5}, "without DP"),
        ({"dp_enabled": True, "target_delta": DELTA, "per_node_epsilon": {}}, "no node's epsilon"),
        ({"per_node_epsilon": {"node-a": 8.0}}, "no delta"),
        ({}, "no node's epsilon"),
    ],
)
def test_a_manifest_without_dp_gives_no_bound(
    tmp_path: Path, metadata: dict[str, Any], reason: str
) -> None:
    bound = release_auc_bound(_released(tmp_path, metadata))

    assert bound.auc_bound is None
    assert bound.mu is None
    assert bound.basis.startswith("no bound")
    assert reason in bound.basis
