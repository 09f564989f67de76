"""Scale-And-Perturb (SAP): approximate distance-comparison-preserving encryption.

Fuchsbauer, Ghosal, Hauke and O'Neill, "Approximate Distance-Comparison-Preserving
Symmetric Encryption", SCN 2022, LNCS 13409, pp. 117-144 (IACR eprint 2021/1666).

A key is a secret scaling factor ``s`` and a PRF key ``K``. ``Enc(m)`` draws a fresh nonce
``n``, derives coins from ``PRF_K(n)``, samples ``u ~ N(0, I_d)`` and ``x' ~ U(0, 1)``, sets
``x = (s * beta / 4) * x'^(1/d)`` and ``lambda = u * x / ||u||`` (a point uniform in the
ball of radius ``s * beta / 4``) and outputs ``(c = s * m + lambda, n)``; ``Dec`` recomputes
``lambda`` from ``(K, n)``. Because ``||lambda|| <= s * beta / 4``, every ciphertext
distance is ``s`` times the plaintext distance up to ``s * beta / 2``, hence
**beta-DCP** for any ``s > 0``: ``||x - y|| < ||x - z|| - beta`` implies
``||c_x - c_y|| < ||c_x - c_z||``; closer comparisons may flip (not order-revealing).
IronCore Labs' ironcore-alloy implements the same scheme; its ``approximation_factor`` is
our ``beta`` (its radius is ``s / 4 * approximation_factor``).

Coins: AES-256-CTR under ``HKDF-SHA256(K)``, the 16-byte nonce being the initial counter
block. 64-bit keystream word ``0`` gives ``x'``; words ``1..h`` and ``h+1..2h``
(``h = ceil(d/2)``) feed Box-Muller (cosines fill ``u[:h]``, sines ``u[h:]``); a word ``w``
maps to ``((w >> 11) + 0.5) / 2**53`` in ``(0, 1)``. Not numpy's generator seeded from a PRF
output: that generator is no cryptographic PRF, and numpy does not promise the same
distribution streams across versions (old ciphertexts could stop decrypting). One AES-ECB
call over many vectors' counter blocks equals their CTR keystreams: encryption stays
vectorised.

Do not over-claim: at betas that keep retrieval quality ``c / ||c||`` stays close to
``m / ||m||`` (the benchmark reports their cosine); for unit-norm plaintexts ``||c||``
reveals ``s`` roughly; there is no authentication (a wrong key with the same id decrypts
to noise).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import ArrayLike, NDArray

from crypto.errors import CryptoInputError, KeyManagementError

__all__ = ["NONCE_BYTES", "DcpeCiphertext", "DcpeKey", "ScaleAndPerturb", "derive_coin_key"]

logger = logging.getLogger(__name__)

NONCE_BYTES = 16
COIN_KEY_BYTES = 32
COIN_KEY_INFO = b"fedembed/dcpe/sap-v1/aes-256-ctr coins"
_AES_BLOCK = 16
_WORD_BYTES = 8
_MANTISSA_BITS = 53
_SHIFT = np.uint64(64 - _MANTISSA_BITS)
_TO_UNIT = 2.0**-_MANTISSA_BITS
_CHUNK_VECTORS = 4096  # bounds keystream memory to ~12 MiB at d=384
_BALL_DIVISOR = 4.0  # radius s * beta / 4 (paper, Algorithm SAP)
_FLOAT32_MAX = float(np.finfo(np.float32).max)

SCHEME = "sap-v1/hkdf-sha256/aes-256-ctr/box-muller"
KEY_FORMAT = "fedembed-dcpe-key"
KEY_FORMAT_VERSION = 1
PRF_KEY_BYTES = 32
# s is secret key material (ironcore-alloy draws a 24-bit integer); beta-DCP holds for any s.
SCALING_FACTOR_RANGE = (1.0, float(2**24))
BETA_MAX = float(2**16)  # the bound in ironcore-alloy's float overflow note
_RANDOM_BITS = 53
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_KEY_FIELDS = ("format", "version", "scheme", "key_id", "tenant", "scaling_factor", "beta")


def _key_error(problem: str, expected: str) -> KeyManagementError:
    return KeyManagementError(
        problem,
        expected=expected,
        fix="restore the DCPE key file from its backup; never edit key files by hand",
    )


def _number(document: dict[str, Any], name: str) -> float:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _key_error(f"DCPE key field {name!r} is not a finite number", "a JSON number")
    return float(value)


@dataclass(frozen=True)
class DcpeKey:
    """One version of one tenant's SAP key; ``repr`` shows no secret.

    Attributes:
        key_id: The version's id, stored with every ciphertext.
        tenant: The tenant (data segment) the key belongs to.
        scaling_factor: The secret scaling factor ``s``.
        beta: The approximation bound (ironcore-alloy's ``approximation_factor``).
        prf_key: The 32-byte secret PRF key ``K``.
    """

    key_id: str
    tenant: str
    scaling_factor: float = field(repr=False)
    beta: float
    prf_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def generate(
        cls,
        *,
        tenant: str,
        beta: float,
        key_id: str | None = None,
        scaling_factor: float | None = None,
    ) -> DcpeKey:
        """A fresh key: ``K`` from ``secrets``, ``s`` uniform in SCALING_FACTOR_RANGE."""
        if scaling_factor is None:
            low, high = SCALING_FACTOR_RANGE
            scaling_factor = low + (high - low) * secrets.randbits(_RANDOM_BITS) / 2**_RANDOM_BITS
        return cls(
            key_id=key_id if key_id is not None else f"dcpe-{secrets.token_hex(8)}",
            tenant=tenant,
            scaling_factor=float(scaling_factor),
            beta=float(beta),
            prf_key=secrets.token_bytes(PRF_KEY_BYTES),
        )

    def validate(self) -> None:
        """Check names, beta, ``s`` and the PRF key length (KeyManagementError if invalid)."""
        for name, value in (("key_id", self.key_id), ("tenant", self.tenant)):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise _key_error(
                    f"DCPE key {name} {value!r} is not a valid name",
                    "1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
                )
        if not (math.isfinite(self.beta) and 0.0 < self.beta <= BETA_MAX):
            raise _key_error(f"DCPE beta {self.beta!r} is out of range", f"0 < beta <= {BETA_MAX}")
        low, high = SCALING_FACTOR_RANGE
        if not (math.isfinite(self.scaling_factor) and low <= self.scaling_factor <= high):
            raise _key_error(
                "the DCPE scaling factor is out of range", f"{low} <= scaling_factor <= {high}"
            )
        if not isinstance(self.prf_key, bytes) or len(self.prf_key) != PRF_KEY_BYTES:
            raise _key_error("the DCPE PRF key has the wrong length", f"{PRF_KEY_BYTES} bytes")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this key (holds the secrets: store it only in a 0600 file)."""
        return {
            "format": KEY_FORMAT,
            "version": KEY_FORMAT_VERSION,
            "scheme": SCHEME,
            "key_id": self.key_id,
            "tenant": self.tenant,
            "scaling_factor": self.scaling_factor,
            "beta": self.beta,
            "prf_key": base64.b64encode(self.prf_key).decode("ascii"),
        }

    def to_json(self) -> str:
        """The key as a JSON document (holds the secrets)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, document: object) -> DcpeKey:
        """Parse and validate :meth:`to_dict`'s object (KeyManagementError if invalid)."""
        if not isinstance(document, dict):
            raise _key_error("a DCPE key is not a JSON object", "an object from DcpeKey.to_json")
        missing = [name for name in (*_KEY_FIELDS, "prf_key") if name not in document]
        if missing:
            raise _key_error(f"a DCPE key lacks {', '.join(missing)}", "every field of to_json")
        if document["format"] != KEY_FORMAT or document["version"] != KEY_FORMAT_VERSION:
            raise _key_error(
                f"not a DCPE key of a known format ({document['format']!r} version "
                f"{document['version']!r})",
                f"format {KEY_FORMAT!r} version {KEY_FORMAT_VERSION}",
            )
        if document["scheme"] != SCHEME:
            raise _key_error(f"DCPE scheme {document['scheme']!r} is unknown", repr(SCHEME))
        try:
            prf_key = base64.b64decode(str(document["prf_key"]), validate=True)
        except (binascii.Error, ValueError):
            raise _key_error("the DCPE PRF key is not base64", "standard base64") from None
        return cls(
            key_id=document["key_id"],
            tenant=document["tenant"],
            scaling_factor=_number(document, "scaling_factor"),
            beta=_number(document, "beta"),
            prf_key=prf_key,
        )

    @classmethod
    def from_json(cls, text: str) -> DcpeKey:
        """Parse and validate :meth:`to_json`'s document (KeyManagementError if invalid)."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _key_error(f"a DCPE key is not valid JSON ({exc.msg})", "JSON") from None
        return cls.from_dict(document)


@dataclass(frozen=True, eq=False)
class DcpeCiphertext:
    """SAP ciphertexts of ``n`` vectors: what the index store may see, plus the nonces.

    Attributes:
        vectors: ``(n, d)`` float32 ciphertext vectors (searchable with Euclidean distance).
        nonces: ``(n, 16)`` uint8 nonces, needed only to decrypt.
        key_id: The key version that encrypted them.
    """

    vectors: NDArray[np.float32]
    nonces: NDArray[np.uint8]
    key_id: str

    def __post_init__(self) -> None:
        vectors, nonces = self.vectors, self.nonces
        shapes = f"vectors {np.shape(vectors)}, nonces {np.shape(nonces)}"
        if not (
            isinstance(vectors, np.ndarray)
            and isinstance(nonces, np.ndarray)
            and vectors.ndim == 2
            and vectors.dtype == np.float32
            and nonces.dtype == np.uint8
            and nonces.shape == (vectors.shape[0], NONCE_BYTES)
            and self.key_id
        ):
            raise CryptoInputError(
                f"a DCPE ciphertext is malformed ({shapes}, key_id {self.key_id!r})",
                expected=f"float32 vectors (n, d), uint8 nonces (n, {NONCE_BYTES}), a key_id",
                fix="pass the ciphertext exactly as ScaleAndPerturb.encrypt returned it",
            )

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def derive_coin_key(prf_key: bytes) -> bytes:
    """The AES-256 key of the coin keystream: HKDF-SHA256(prf_key, info=COIN_KEY_INFO)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=COIN_KEY_BYTES, salt=None, info=COIN_KEY_INFO
    ).derive(prf_key)


def _coin_words(coin_key: bytes, nonces: NDArray[np.uint8], words: int) -> NDArray[np.uint64]:
    """The first ``words`` 64-bit words of AES-CTR(coin_key, nonce) for every nonce."""
    blocks = -(-words * _WORD_BYTES // _AES_BLOCK)
    halves = np.ascontiguousarray(nonces).view(">u8").astype(np.uint64)  # (n, 2) big-endian
    step = np.arange(blocks, dtype=np.uint64)
    low = halves[:, 1:2] + step  # wraps modulo 2**64 like the 128-bit counter
    high = halves[:, 0:1] + (low < halves[:, 1:2]).astype(np.uint64)
    counters = np.empty((nonces.shape[0], blocks, 2), dtype=">u8")
    counters[:, :, 0] = high
    counters[:, :, 1] = low
    encryptor = Cipher(algorithms.AES(coin_key), modes.ECB()).encryptor()
    stream = encryptor.update(counters.tobytes()) + encryptor.finalize()
    return np.frombuffer(stream, dtype="<u8").reshape(nonces.shape[0], -1)[:, :words]


def _perturbations(
    coin_key: bytes, nonces: NDArray[np.uint8], dimension: int, radius: float
) -> NDArray[np.float64]:
    """``lambda`` for every nonce: uniform in the d-ball of ``radius`` (float64)."""
    half = -(-dimension // 2)
    words = _coin_words(coin_key, nonces, 1 + 2 * half)
    uniform = ((words >> _SHIFT).astype(np.float64) + 0.5) * _TO_UNIT
    scale = radius * uniform[:, 0] ** (1.0 / dimension)  # x = (s beta / 4) x'^(1/d)
    modulus = np.sqrt(-2.0 * np.log(uniform[:, 1 : 1 + half]))
    angle = (2.0 * math.pi) * uniform[:, 1 + half :]
    normal = np.concatenate((modulus * np.cos(angle), modulus * np.sin(angle)), axis=1)
    normal = normal[:, :dimension]  # u ~ N(0, I_d)
    norms = np.linalg.norm(normal, axis=1)
    result: NDArray[np.float64] = normal * (scale / norms)[:, None]  # u x / ||u||
    return result


def _as_matrix(vectors: ArrayLike, what: str) -> NDArray[np.float64]:
    try:
        array = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.empty((0, 0))
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0 or not np.isfinite(array).all():
        raise CryptoInputError(
            f"{what} are not a finite (n, d) or (d,) array of floats (shape {array.shape})",
            expected="one finite embedding vector per row, d >= 1",
            fix="check the encoder output; drop or re-embed broken (NaN/inf) vectors",
        )
    return array


class ScaleAndPerturb:
    """SAP encryption and decryption under one key version.

    Args:
        key: The key version (scaling factor, beta, PRF key).

    Raises:
        KeyManagementError: The key's beta or scaling factor is out of range.
    """

    def __init__(self, key: DcpeKey) -> None:
        key.validate()
        self._key = key
        self._coin_key = derive_coin_key(key.prf_key)
        self._radius = key.scaling_factor * key.beta / _BALL_DIVISOR

    @property
    def key_id(self) -> str:
        """The id of the key version this instance encrypts with."""
        return self._key.key_id

    def encrypt(self, vectors: ArrayLike) -> DcpeCiphertext:
        """Encrypt vectors with fresh random nonces.

        Args:
            vectors: ``(n, d)`` or ``(d,)`` finite floats.

        Returns:
            ``(n, d)`` float32 ciphertexts (``(1, d)`` for one vector) and their nonces.

        Raises:
            CryptoInputError: The vectors are not a finite 1-d or 2-d array, or overflow float32.
        """
        started = time.perf_counter()
        plain = _as_matrix(vectors, "vectors to encrypt")
        count, dimension = plain.shape
        nonces = np.frombuffer(secrets.token_bytes(NONCE_BYTES * count), dtype=np.uint8)
        nonces = nonces.reshape(count, NONCE_BYTES).copy()
        out = np.empty((count, dimension), dtype=np.float32)
        for start in range(0, count, _CHUNK_VECTORS):
            rows = slice(start, start + _CHUNK_VECTORS)
            noise = _perturbations(self._coin_key, nonces[rows], dimension, self._radius)
            cipher = self._key.scaling_factor * plain[rows] + noise
            if not np.all(np.abs(cipher) <= _FLOAT32_MAX):
                raise CryptoInputError(
                    "a DCPE ciphertext overflows float32",
                    expected="vectors whose entries times the scaling factor fit in float32",
                    fix="normalise the vectors before encrypting them",
                )
            out[rows] = cipher
        seconds = time.perf_counter() - started
        logger.debug("dcpe: encrypted %d vectors key=%s in %.3f s", count, self.key_id, seconds)
        return DcpeCiphertext(vectors=out, nonces=nonces, key_id=self._key.key_id)

    def decrypt(self, ciphertext: DcpeCiphertext) -> NDArray[np.float32]:
        """Recover the plaintext vectors ``(c - lambda) / s``.

        Args:
            ciphertext: Ciphertexts this key version produced.

        Returns:
            ``(n, d)`` float32 plaintexts.

        Raises:
            KeyManagementError: The ciphertext names another key version.
        """
        if ciphertext.key_id != self._key.key_id:
            raise KeyManagementError(
                f"the ciphertext was encrypted with DCPE key {ciphertext.key_id!r}, "
                f"not with {self._key.key_id!r}",
                expected="a ciphertext of this key version",
                fix="decrypt with the key version it names (DcpeKeyring.get(key_id))",
            )
        count, dimension = ciphertext.vectors.shape
        out = np.empty((count, dimension), dtype=np.float32)
        for start in range(0, count, _CHUNK_VECTORS):
            rows = slice(start, start + _CHUNK_VECTORS)
            noise = _perturbations(self._coin_key, ciphertext.nonces[rows], dimension, self._radius)
            cipher = ciphertext.vectors[rows].astype(np.float64)
            out[rows] = (cipher - noise) / self._key.scaling_factor
        logger.debug("dcpe: decrypted %d vectors key=%s", count, self._key.key_id)
        return out

    def encrypt_queries(self, vectors: ArrayLike) -> NDArray[np.float32]:
        """Encrypt query vectors for a search; their nonces are not kept.

        Args:
            vectors: ``(n, d)`` or ``(d,)`` finite floats.

        Returns:
            Float32 ciphertext vectors of the input's shape.
        """
        shape = np.shape(vectors)
        encrypted = self.encrypt(vectors).vectors
        return encrypted.reshape(shape) if len(shape) == 1 else encrypted
