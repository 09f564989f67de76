from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedding_core.adapter import MANIFEST_FILE, WEIGHTS_FILE, Adapter, AdapterKind, AdapterSide
from embedding_core.errors import AdapterError


def _unit(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("kind", "rank"),
    [(AdapterKind.RESIDUAL_LINEAR, None), (AdapterKind.LOW_RANK, 8), (AdapterKind.SHIFT, None)],
)
def test_fresh_adapter_is_identity(kind: AdapterKind, rank: int | None) -> None:
    x = _unit(16, 384)

    y = Adapter(384, kind=kind, rank=rank).transform(x)

    np.testing.assert_allclose(y, x, atol=1e-6)


def test_projection_reduces_dimension_and_keeps_neighbours() -> None:
    centres = _unit(20, 384)
    labels = np.repeat(np.arange(20), 10)
    x = centres[labels] + 0.5 * _unit(200, 384, seed=1)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    adapter = Adapter(384, out_dim=128)

    y = adapter.transform(x)

    assert y.shape == (200, 128)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    sims = y @ y.T
    np.fill_diagonal(sims, -np.inf)
    assert np.mean(labels[np.argmax(sims, axis=1)] == labels) > 0.95


def test_adapter_is_trainable() -> None:
    adapter = Adapter(32, kind="low_rank", rank=4)
    x = torch.from_numpy(_unit(64, 32))
    target = torch.from_numpy(_unit(64, 32, seed=1))
    optimiser = torch.optim.Adam(adapter.parameters(), lr=0.05)

    def loss() -> torch.Tensor:
        return (1 - (adapter(x) * target).sum(dim=1)).mean()

    before = loss().item()
    for _ in range(50):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()

    assert loss().item() < before - 0.05


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    in_dim=st.integers(min_value=2, max_value=48),
    kind=st.sampled_from(list(AdapterKind)),
    reduce=st.booleans(),
    side=st.sampled_from(list(AdapterSide)),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_save_load_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    in_dim: int,
    kind: AdapterKind,
    reduce: bool,
    side: AdapterSide,
    seed: int,
) -> None:
    folder = tmp_path_factory.mktemp("adapter")
    rank = max(1, in_dim // 3) if kind is AdapterKind.LOW_RANK else None
    out_dim = max(1, in_dim // 2) if reduce else None
    adapter = Adapter(
        in_dim,
        kind=kind,
        rank=rank,
        out_dim=out_dim,
        side=side,
        seed=seed,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 0.1)

    adapter.save(folder, base_model_id="m", base_model_fingerprint="f" * 64, metadata={"rounds": 3})
    loaded = Adapter.load(folder)

    x = _unit(5, in_dim, seed)
    np.testing.assert_array_equal(loaded.transform(x), adapter.transform(x))
    assert loaded.config() == adapter.config()
    assert loaded.metadata == {"rounds": 3}
    assert loaded.base_model == {"id": "m", "fingerprint": "f" * 64}


def test_manifest_records_dims_and_hash(tmp_path: Path) -> None:
    Adapter(384, out_dim=256).save(tmp_path, base_model_id="m", base_model_fingerprint="abc")

    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())

    assert manifest["format"] == "fedembed-adapter"
    assert manifest["in_dim"] == 384
    assert manifest["out_dim"] == 256
    assert len(manifest["weights_sha256"]) == 64
    assert manifest["parameters"] == 384 * 384 + 384 + 256 * 384


def test_shift_adds_one_vector_to_every_query() -> None:
    adapter = Adapter(8, kind="shift")
    with torch.no_grad():
        adapter.shift.copy_(torch.arange(8, dtype=torch.float32) / 10)  # type: ignore[union-attr]
    x = _unit(4, 8)

    y = adapter.transform(x)

    expected = x + np.arange(8, dtype=np.float32) / 10
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert [n for n, _ in adapter.named_parameters()] == ["shift"]


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    Adapter(16).save(tmp_path, base_model_id="m", base_model_fingerprint="abc")
    weights = tmp_path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))

    with pytest.raises(AdapterError, match="do not match the SHA-256"):
        Adapter.load(tmp_path)


def test_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no adapter manifest") as info:
        Adapter.load(tmp_path / "nothing")

    assert "Fix:" in str(info.value)


def test_wrong_format_version_is_refused(tmp_path: Path) -> None:
    Adapter(8).save(tmp_path, base_model_id="m", base_model_fingerprint="abc")
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(AdapterError, match="format_version 99"):
        Adapter.load(tmp_path)


def test_other_base_model_is_refused(tmp_path: Path) -> None:
    Adapter(8).save(tmp_path, base_model_id="m", base_model_fingerprint="a" * 64)

    with pytest.raises(AdapterError, match="another base model"):
        Adapter.load(tmp_path).check_base("b" * 64)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "low_rank"},
        {"kind": "low_rank", "rank": 0},
        {"rank": 4},
        {"out_dim": 999},
        {"kind": "mystery"},
        {"side": "documents"},
    ],
)
def test_invalid_configuration_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(AdapterError):
        Adapter(16, **kwargs)  # type: ignore[arg-type]


def test_apply_rejects_wrong_width() -> None:
    with pytest.raises(AdapterError, match=r"shape \(n, 16\)"):
        Adapter(16).transform(_unit(3, 8))
