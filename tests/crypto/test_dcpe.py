"""Scale-And-Perturb DCPE and its keyring: round trips, beta-DCP, coins, key files."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from crypto.dcpe import DcpeCiphertext, DcpeKey, ScaleAndPerturb
from crypto.dcpe_keys import DcpeKeyring
from crypto.errors import CryptoInputError, KeyManagementError

# The wire format, written out independently of the module: changing it breaks old data.
SPEC_COIN_INFO = b"fedembed/dcpe/sap-v1/aes-256-ctr coins"
FIXED_PRF_KEY = bytes(range(32))


def _fixed_key(beta: float = 1.0, scaling_factor: float = 1000.0) -> DcpeKey:
    return DcpeKey(
        key_id="kat.v1",
        tenant="kat",
        scaling_factor=scaling_factor,
        beta=beta,
        prf_key=FIXED_PRF_KEY,
    )


def _reference_lambda(key: DcpeKey, nonce: bytes, d: int) -> np.ndarray:
    """The paper's lambda, from the documented coin layout, in plain Python."""
    coin_key = HKDF(hashes.SHA256(), 32, salt=None, info=SPEC_COIN_INFO).derive(key.prf_key)
    half = math.ceil(d / 2)
    words = 1 + 2 * half
    stream = Cipher(algorithms.AES(coin_key), modes.CTR(nonce)).encryptor().update(bytes(8 * words))
    unit = [((w >> 11) + 0.5) / 2**53 for w in struct.unpack(f"<{words}Q", stream)]
    radius = key.scaling_factor * key.beta / 4 * unit[0] ** (1 / d)
    mod = [math.sqrt(-2 * math.log(unit[1 + k])) for k in range(half)]
    ang = [2 * math.pi * unit[1 + half + k] for k in range(half)]
    u = [m * math.cos(a) for m, a in zip(mod, ang, strict=True)]
    u += [m * math.sin(a) for m, a in zip(mod, ang, strict=True)]
    u = u[:d]
    norm = math.sqrt(sum(x * x for x in u))
    return np.array([x * radius / norm for x in u])


def _sphere(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d))
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def _triple_order(
    sap: ScaleAndPerturb, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plaintext gap ||x-z|| - ||x-y||, and whether the ciphertexts keep y closer than z."""
    gap = np.linalg.norm(x - z, axis=1) - np.linalg.norm(x - y, axis=1)
    cx, cy, cz = (sap.encrypt(v).vectors.astype(np.float64) for v in (x, y, z))
    kept = np.linalg.norm(cx - cy, axis=1) < np.linalg.norm(cx - cz, axis=1)
    return gap, kept


# --- encryption ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.integers(1, 12).flatmap(
        lambda n: st.integers(1, 48).flatmap(
            lambda d: arrays(np.float64, (n, d), elements=st.floats(-10, 10, width=32))
        )
    ),
    beta=st.sampled_from([1e-3, 0.1, 1.5, 50.0]),
    scaling_factor=st.sampled_from([1.0, 1234.5, float(2**24)]),
)
def test_round_trip(data: np.ndarray, beta: float, scaling_factor: float) -> None:
    # Prepare
    key = DcpeKey.generate(tenant="t", beta=beta, scaling_factor=scaling_factor)
    sap = ScaleAndPerturb(key)
    # Execute
    ciphertext = sap.encrypt(data)
    plain = sap.decrypt(ciphertext)
    # Assert
    assert ciphertext.vectors.dtype == np.float32
    assert ciphertext.vectors.shape == data.shape
    assert ciphertext.nonces.dtype == np.uint8
    assert ciphertext.nonces.shape == (len(data), 16)
    assert plain.dtype == np.float32
    np.testing.assert_allclose(plain, data, rtol=0, atol=1e-5)


def test_one_vector_and_queries_keep_their_shape() -> None:
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=0.5))
    vector = _sphere(1, 384, np.random.default_rng(0))[0]
    ciphertext = sap.encrypt(vector)
    assert ciphertext.vectors.shape == (1, 384)
    assert len(ciphertext) == 1
    np.testing.assert_allclose(sap.decrypt(ciphertext)[0], vector, atol=1e-6)
    assert sap.encrypt_queries(vector).shape == (384,)
    assert sap.encrypt_queries(np.stack([vector, vector])).shape == (2, 384)


@pytest.mark.parametrize("d", [1, 5, 384])
def test_ciphertext_matches_independent_reference(d: int) -> None:
    # Prepare
    key = _fixed_key(beta=1.5)
    sap = ScaleAndPerturb(key)
    plain = _sphere(3, d, np.random.default_rng(d))
    # Execute
    ciphertext = sap.encrypt(plain)
    # Assert: c = s m + lambda(K, n) with lambda from AES-CTR computed independently
    for row in range(3):
        expected = key.scaling_factor * plain[row] + _reference_lambda(
            key, ciphertext.nonces[row].tobytes(), d
        )
        np.testing.assert_allclose(ciphertext.vectors[row], expected, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize(
    "nonce",
    [
        bytes(16),
        bytes.fromhex("0000000000000001ffffffffffffff80"),  # carry into the high half
        b"\xff" * 16,  # counter wraps modulo 2**128
    ],
)
def test_decrypt_recomputes_lambda_from_the_nonce(nonce: bytes) -> None:
    # Prepare: a zero ciphertext decrypts to -lambda / s
    key = _fixed_key(beta=2.0, scaling_factor=3.0)
    d = 384
    ciphertext = DcpeCiphertext(
        vectors=np.zeros((1, d), np.float32),
        nonces=np.frombuffer(nonce, np.uint8).reshape(1, 16).copy(),
        key_id=key.key_id,
    )
    # Execute
    plain = ScaleAndPerturb(key).decrypt(ciphertext)
    # Assert
    expected = -_reference_lambda(key, nonce, d) / key.scaling_factor
    np.testing.assert_allclose(plain[0], expected, rtol=1e-6, atol=1e-7)


def test_encryption_is_randomised() -> None:
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=0.3))
    vector = _sphere(1, 64, np.random.default_rng(1))
    first, second = sap.encrypt(np.repeat(vector, 2, axis=0)), sap.encrypt(vector)
    assert not np.array_equal(first.vectors[0], first.vectors[1])
    assert not np.array_equal(first.vectors[0], second.vectors[0])
    assert len({bytes(n) for n in (*first.nonces, *second.nonces)}) == 3


def test_perturbation_is_uniform_in_the_ball_of_radius_s_beta_over_4() -> None:
    # Prepare
    d, n = 8, 4000
    key = DcpeKey.generate(tenant="t", beta=0.8)
    plain = _sphere(n, d, np.random.default_rng(2))
    # Execute
    ciphertext = ScaleAndPerturb(key).encrypt(plain)
    noise = ciphertext.vectors.astype(np.float64) - key.scaling_factor * plain
    radius = np.linalg.norm(noise, axis=1) / (key.scaling_factor * key.beta / 4)
    # Assert: inside the ball, radius^d ~ U(0, 1), directions centred. The nonces are
    # fresh random bytes (not seedable): when the law holds the KS p-value is uniform, so
    # the bound is the false-alarm rate, one run in 10^7 (a 5-sigma event).
    assert radius.max() <= 1.0 + 1e-4
    assert stats.kstest(radius**d, "uniform").pvalue > 1e-7
    directions = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    assert np.abs(directions.mean(axis=0)).max() < 4 / math.sqrt(n)
    # ciphertext scale: ||c|| / s is within beta / 4 of ||m|| = 1
    norms = np.linalg.norm(ciphertext.vectors.astype(np.float64), axis=1) / key.scaling_factor
    assert np.all(np.abs(norms - 1.0) <= key.beta / 4 + 1e-4)


@pytest.mark.parametrize(("d", "beta"), [(2, 0.25), (3, 0.2), (384, 0.05)])
def test_beta_dcp_holds_on_random_triples(d: int, beta: float) -> None:
    # Prepare: 20k triples on the unit sphere (d=384: x near y and z so gaps vary)
    rng = np.random.default_rng(d)
    n = 20_000
    x = _sphere(n, d, rng)
    if d > 3:
        y = _sphere(n, d, rng) * rng.uniform(0.2, 0.6, (n, 1)) + x
        z = _sphere(n, d, rng) * rng.uniform(0.2, 0.6, (n, 1)) + x
    else:
        y, z = _sphere(n, d, rng), _sphere(n, d, rng)
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=beta))
    # Execute
    gap, kept = _triple_order(sap, x, y, z)
    # Assert: every comparison apart by more than beta survives encryption
    covered = gap > beta
    assert covered.sum() > 2_000
    assert (covered & ~kept).sum() == 0
    near = (gap > beta) & (gap < 1.5 * beta)  # the bound is exercised close to its edge
    assert near.sum() > 200


@pytest.mark.parametrize(("d", "beta"), [(3, 0.2), (384, 0.3)])
def test_close_comparisons_are_sometimes_flipped(d: int, beta: float) -> None:
    # Prepare: triples whose gap is below beta / 4
    rng = np.random.default_rng(10 + d)
    n = 20_000
    x = _sphere(n, d, rng)
    y = x + 0.5 * _sphere(n, d, rng)
    z = x + (0.5 + rng.uniform(0.0, beta / 4, (n, 1))) * _sphere(n, d, rng)
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=beta))
    # Execute
    gap, kept = _triple_order(sap, x, y, z)
    # Assert: not order-revealing; flips get rarer as the gap grows
    assert np.all((gap >= 0) & (gap < beta / 4 + 1e-9))
    flipped = ~kept
    assert flipped.mean() > 0.02
    smallest, largest = gap < np.quantile(gap, 0.25), gap > np.quantile(gap, 0.75)
    assert flipped[smallest].mean() > flipped[largest].mean()


def test_wrong_key_is_refused() -> None:
    key, other = (DcpeKey.generate(tenant="t", beta=0.5) for _ in range(2))
    ciphertext = ScaleAndPerturb(key).encrypt(np.ones((2, 4)))
    with pytest.raises(KeyManagementError, match=r"encrypted with DCPE key"):
        ScaleAndPerturb(other).decrypt(ciphertext)


def test_wrong_key_with_the_same_id_yields_noise_not_an_error() -> None:
    # SAP has no authentication (documented): only the key id guards decryption.
    key = DcpeKey.generate(tenant="t", beta=0.5, key_id="same")
    impostor = DcpeKey.generate(tenant="t", beta=0.5, key_id="same")
    plain = _sphere(2, 16, np.random.default_rng(3))
    decrypted = ScaleAndPerturb(impostor).decrypt(ScaleAndPerturb(key).encrypt(plain))
    assert not np.allclose(decrypted, plain, atol=1e-2)


@pytest.mark.parametrize(
    "vectors",
    [
        np.array([[1.0, np.nan]]),
        np.array([[np.inf, 0.0]]),
        np.zeros((2, 2, 2)),
        np.zeros((3, 0)),
        np.array(5.0),
        [["a", "b"]],
    ],
)
def test_bad_vectors_are_refused(vectors: object) -> None:
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=0.5))
    with pytest.raises(CryptoInputError, match=r"finite"):
        sap.encrypt(vectors)  # type: ignore[arg-type]


def test_float32_overflow_is_refused() -> None:
    sap = ScaleAndPerturb(DcpeKey.generate(tenant="t", beta=0.5, scaling_factor=2.0**24))
    with pytest.raises(CryptoInputError, match=r"overflows float32"):
        sap.encrypt(np.full((1, 3), 1e35))


def test_malformed_ciphertext_is_refused() -> None:
    with pytest.raises(CryptoInputError, match=r"malformed"):
        DcpeCiphertext(np.zeros((2, 3), np.float32), np.zeros((1, 16), np.uint8), "k")
    with pytest.raises(CryptoInputError, match=r"malformed"):
        DcpeCiphertext(np.zeros((2, 3), np.float64), np.zeros((2, 16), np.uint8), "k")
    with pytest.raises(CryptoInputError, match=r"malformed"):
        DcpeCiphertext(np.zeros((2, 3), np.float32), np.zeros((2, 16), np.uint8), "")


# --- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"beta": math.nan}, "beta"),
        ({"beta": 2.0**17}, "beta"),
        ({"scaling_factor": 0.5}, "scaling factor"),
        ({"scaling_factor": 2.0**25}, "scaling factor"),
        ({"scaling_factor": math.inf}, "scaling factor"),
        ({"prf_key": b"short"}, "PRF key"),
        ({"tenant": ""}, "tenant"),
        ({"key_id": "a b/c"}, "key_id"),
    ],
)
def test_invalid_keys_are_refused(changes: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "key_id": "k1",
        "tenant": "t",
        "scaling_factor": 10.0,
        "beta": 0.5,
        "prf_key": FIXED_PRF_KEY,
    }
    fields.update(changes)
    with pytest.raises(KeyManagementError, match=message):
        DcpeKey(**fields)  # type: ignore[arg-type]


def test_generated_keys_are_fresh_and_in_range() -> None:
    keys = [DcpeKey.generate(tenant="t", beta=1.0) for _ in range(50)]
    assert len({k.prf_key for k in keys}) == 50
    assert len({k.key_id for k in keys}) == 50
    assert all(1.0 <= k.scaling_factor <= 2.0**24 for k in keys)
    assert len({k.scaling_factor for k in keys}) == 50


def test_key_json_round_trip_and_secret_free_repr() -> None:
    key = DcpeKey.generate(tenant="acme", beta=1.5)
    assert DcpeKey.from_json(key.to_json()) == key
    shown = repr(key)
    assert "acme" in shown
    assert key.key_id in shown
    for secret in _secret_forms(key):
        assert secret not in shown


def _secret_forms(key: DcpeKey) -> list[str]:
    return [
        base64.b64encode(key.prf_key).decode(),
        key.prf_key.hex(),
        repr(key.scaling_factor),
        str(key.prf_key),
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", "not valid JSON"),
        (lambda d: json.dumps([1, 2]), "not a JSON object"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "beta"}), "lacks beta"),
        (lambda d: json.dumps({**d, "format": "other"}), "known format"),
        (lambda d: json.dumps({**d, "scheme": "sap-v0"}), "scheme"),
        (lambda d: json.dumps({**d, "prf_key": "***"}), "not base64"),
        (lambda d: json.dumps({**d, "prf_key": "AAAA"}), "wrong length"),
        (lambda d: json.dumps({**d, "beta": "0.5"}), "finite number"),
        (lambda d: json.dumps({**d, "scaling_factor": True}), "finite number"),
        (lambda d: json.dumps({**d, "tenant": 7}), "tenant"),
    ],
)
def test_malformed_key_json_gives_a_clear_error(mutate: object, message: str) -> None:
    key = DcpeKey.generate(tenant="acme", beta=1.5)
    text = mutate(key.to_dict())  # type: ignore[operator]
    with pytest.raises(KeyManagementError, match=message) as caught:
        DcpeKey.from_json(text)
    assert caught.value.expected
    assert caught.value.fix
    for secret in _secret_forms(key):
        assert secret not in str(caught.value)


# --- keyring -------------------------------------------------------------------------------


def test_keyring_lifecycle(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "acme.dcpe.json"
    ring = DcpeKeyring.create(path, tenant="acme", beta=0.4)
    first = ring.current()
    plain = _sphere(50, 32, np.random.default_rng(4))
    old = ScaleAndPerturb(first).encrypt(plain)
    # Execute: rotate, re-encrypt, retire the old version
    second = ring.rotate()
    reloaded = DcpeKeyring.load(path)
    moved = reloaded.reencrypt(old)
    reloaded.retire(first.key_id)
    third = reloaded.rotate(beta=0.2)
    final = DcpeKeyring.load(path)
    # Assert
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.key_id == "acme.v1"
    assert second.key_id == "acme.v2"
    assert moved.key_id == second.key_id
    np.testing.assert_allclose(ScaleAndPerturb(second).decrypt(moved), plain, atol=1e-5)
    assert third.key_id == "acme.v3"
    assert third.beta == 0.2
    assert final.key_ids == ["acme.v2", "acme.v3"]
    assert final.current() == third
    assert final.get("acme.v2") == second
    with pytest.raises(KeyManagementError, match="was retired"):
        final.get("acme.v1")
    with pytest.raises(KeyManagementError, match="was retired"):
        final.reencrypt(old)
    with pytest.raises(KeyManagementError, match="does not exist"):
        final.get("acme.v9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme.dcpe.json"]  # no temp left


def test_keyring_refuses_to_retire_the_current_key(tmp_path: Path) -> None:
    ring = DcpeKeyring.create(tmp_path / "k.json", tenant="acme", beta=0.4)
    with pytest.raises(KeyManagementError, match="current key"):
        ring.retire(ring.current().key_id)
    assert DcpeKeyring.load(tmp_path / "k.json").key_ids == ["acme.v1"]


def test_keyring_create_does_not_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ring = DcpeKeyring.create(path, tenant="acme", beta=0.4)
    with pytest.raises(KeyManagementError, match="already exists"):
        DcpeKeyring.create(path, tenant="acme", beta=0.4)
    assert DcpeKeyring.load(path).current() == ring.current()


def test_keyring_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    path = tmp_path / "k.json"
    ring = DcpeKeyring.create(path, tenant="acme", beta=0.4)
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    # Execute
    with pytest.raises(OSError, match="disk full"):
        ring.rotate()
    # Assert: the old file is intact and no temporary file is left behind
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]


def _write(path: Path, document: object, mode: int = 0o600) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(mode)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "[", "not valid JSON"),
        (lambda d: {k: v for k, v in d.items() if k != "current"}, "not a DCPE keyring"),
        (lambda d: {**d, "version": 99}, "unknown keyring format"),
        (lambda d: {**d, "keys": []}, "not a list"),
        (lambda d: {**d, "current": "acme.v7"}, "is not live"),
        (lambda d: {**d, "retired": ["acme.v1"]}, "is not live"),
        (lambda d: {**d, "keys": d["keys"] * 2}, "duplicate key ids"),
        (lambda d: {**d, "tenant": "other"}, "another tenant"),
        (lambda d: {**d, "next_version": "2"}, "next_version"),
        (lambda d: {**d, "keys": [{**d["keys"][0], "beta": -1}]}, "beta"),
    ],
)
def test_malformed_keyring_gives_a_clear_error(
    tmp_path: Path, mutate: object, message: str
) -> None:
    # Prepare
    path = tmp_path / "k.json"
    ring = DcpeKeyring.create(path, tenant="acme", beta=0.4)
    _write(path, mutate(json.loads(path.read_text())))  # type: ignore[operator]
    # Execute / Assert
    with pytest.raises(KeyManagementError, match=message) as caught:
        DcpeKeyring.load(path)
    assert str(path) in str(caught.value)
    assert caught.value.fix
    for secret in _secret_forms(ring.current()):
        assert secret not in str(caught.value)


def test_keyring_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    DcpeKeyring.create(path, tenant="acme", beta=0.4)
    path.chmod(0o644)
    with pytest.raises(KeyManagementError, match=r"chmod 600"):
        DcpeKeyring.load(path)


def test_missing_keyring_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyManagementError, match="cannot read"):
        DcpeKeyring.load(tmp_path / "absent.json")


def test_secrets_stay_out_of_logs_and_repr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    caplog.set_level(logging.DEBUG)
    ring = DcpeKeyring.create(tmp_path / "k.json", tenant="acme", beta=0.4)
    # Execute
    old = ScaleAndPerturb(ring.current()).encrypt(np.eye(4))
    ring.rotate()
    ScaleAndPerturb(ring.current()).decrypt(ring.reencrypt(old))
    ring.retire("acme.v1")
    # Assert
    assert "dcpe" in caplog.text  # the operations were logged ...
    shown = caplog.text + repr(ring) + repr(ScaleAndPerturb(ring.current())) + repr(old)
    for key in (DcpeKeyring.load(tmp_path / "k.json").current(), ring.current()):
        for secret in _secret_forms(key):
            assert secret not in shown  # ... without any key material
