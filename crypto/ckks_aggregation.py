"""CKKS secure aggregation helpers (SEAL through TenSEAL): encrypt, sum under encryption, decrypt.

The consortium shares one CKKS key pair. Every member node holds the *secret* context
(it encrypts its update and decrypts the aggregate); the coordinator holds only the
*public* context, with which it can add ciphertexts but never decrypt one, so it sees no
single member's update in the clear (the honest-but-curious coordinator of ARCHITECTURE.md).

A flat update vector is cut into chunks of ``poly_modulus_degree`` values, two per CKKS
slot (real and imaginary part of one complex slot); each chunk becomes one ciphertext.
Nodes encrypt with the secret key they hold anyway (symmetric CKKS: RLWE samples
``(-a*s + m + e, a)``, as secure as public-key encryption and with a smaller error), and
SEAL replaces the uniformly random ``a`` by the seed it was drawn from: a fresh
ciphertext is half the size. Sums are taken chunk by chunk. Nodes that want a weighted
mean pre-multiply their update by their weight (``encrypt_vector(..., scale=w)``) and
divide the decrypted sum by the total weight.

Wire format of a chunk (format 2, since 2026-12-07): ``b"FCK2"``, the number of values
it holds (uint32, little-endian), then the SEAL ciphertext as SEAL serializes it (its
own header; seeded when fresh). A chunk without the marker (a TenSEAL vector from an
older fedembed) is refused with an error that says so, never misread.

Room for the values: a sum must stay within :func:`max_abs_sum` (about 185,000 with the
default parameters) or it would wrap modulo the ciphertext modulus. Each node refuses to
encrypt a value above that bound divided by the number of contributions a sum may hold
(``summands``), and :func:`decrypt_vector` and :func:`decrypt_sum` refuse a decrypted
value above it.

Everything here is pure crypto on bytes and NumPy arrays: no Flower import, so the
ServerApp, ClientApp and tests can all use it.

Limits: a ciphertext made under another consortium's key pair with the same parameters
is indistinguishable from a valid one to a holder of the public context only; it adds
without error and decrypts to noise. Bind updates to the consortium at the transport
layer (node authentication, signed contributions) and compare :func:`context_fingerprint`
values.

The parameters live in :mod:`crypto.ckks_parameters` and the key pairs (contexts)
in :mod:`crypto.ckks_context`; their public names are re-exported here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import tenseal.sealapi as sealapi
from numpy.typing import NDArray

from crypto.ckks_context import (
    TENSEAL_ERRORS,
    ScratchFile,
    SealHandles,
    context_fingerprint,
    is_private_context,
    make_contexts,
    seal_handles,
    slot_count,
)
from crypto.ckks_parameters import (
    MAX_COEFF_MODULUS_BITS,
    CkksError,
    CkksParameters,
    num_chunks,
)

__all__ = [
    "CHUNK_MAGIC",
    "MAX_COEFF_MODULUS_BITS",
    "CkksError",
    "CkksParameters",
    "context_fingerprint",
    "decrypt_sum",
    "decrypt_vector",
    "encrypt_vector",
    "is_private_context",
    "make_contexts",
    "max_abs_sum",
    "num_chunks",
    "slot_count",
    "sum_encrypted",
]

CHUNK_MAGIC = b"FCK2"
"""The marker of a format-2 chunk (seeded SEAL ciphertext, two values per slot)."""

_HEADER = struct.Struct("<4sI")
_SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, version, compression, size
_SEAL_MAGIC = 0xA15E
_SEAL_ERRORS = (*TENSEAL_ERRORS, IndexError)
_FIX_RESEND = "resend the update; drop the node from this round if it persists"


def _bound(handles: SealHandles) -> float:
    # Two values per slot: every coefficient of an encoding is at most
    # scale * sqrt(2) * max|value|; keep the sum's below q/4 (q/2 with a factor 2 margin).
    return float(2.0 ** (handles.data_modulus_log2 - 2.5) / handles.scale)


def max_abs_sum(context: bytes) -> float:
    """The largest absolute value a decrypted sum may hold under ``context``'s parameters."""
    return _bound(seal_handles(context, what="context", need_secret=False))


def _flat_values(values: Any, scale: float) -> NDArray[np.float64]:
    try:
        flat = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as err:
        raise CkksError(
            f"the values to encrypt are not numeric ({err})",
            expected="a float32/float64 NumPy array",
            fix="convert the update with np.asarray(update, dtype=np.float32)",
        ) from None
    if flat.size == 0:
        raise CkksError(
            "the vector to encrypt is empty",
            expected="at least one value",
            fix="pass the flattened update",
        )
    if not math.isfinite(scale):
        raise CkksError(f"scale is {scale}", expected="a finite number", fix="pass a finite weight")
    if scale != 1.0:
        with np.errstate(over="ignore", invalid="ignore"):
            flat = flat * scale
    if not np.all(np.isfinite(flat)):
        raise CkksError(
            f"the vector to encrypt holds {int(np.sum(~np.isfinite(flat)))} NaN or infinite "
            "values (after scaling)",
            expected="finite values",
            fix="check the local training step (clip the update) before encrypting",
        )
    return flat


def encrypt_vector(
    values: NDArray[np.floating[Any]] | NDArray[np.integer[Any]],
    secret_context: bytes,
    *,
    scale: float = 1.0,
    summands: int = 1,
) -> list[bytes]:
    """Encrypt a vector (flattened) as ``ceil(len / degree)`` serialized ciphertexts.

    Args:
        values: The update; any shape, flattened in C order. Must be finite.
        secret_context: The node's serialized secret context (secret-key encryption).
        scale: Factor applied before encryption, e.g. the node's aggregation weight.
        summands: The most contributions a sum of this vector may hold (the
            consortium's member count): each value must stay within
            ``max_abs_sum / summands``.

    Raises:
        CkksError: Empty or non-finite input, a value too large for the sum, a bad scale,
            or an unusable context (one without the secret key included).
    """
    flat = _flat_values(values, scale)
    if isinstance(summands, bool) or not isinstance(summands, int) or summands < 1:
        raise CkksError(
            f"summands is {summands!r}", expected="a positive integer", fix="pass the member count"
        )
    handles = seal_handles(secret_context, what="context", need_secret=True)
    limit = _bound(handles) / summands
    largest = float(np.max(np.abs(flat)))
    if largest > limit:
        raise CkksError(
            f"the update holds a value of {largest:.6g}, above the {limit:.6g} each of "
            f"{summands} summed contributions may hold under these CKKS parameters",
            expected=f"values within +-{limit:.6g}",
            fix="clip the update (max-grad-norm, update-clip-norm), or re-provision the "
            "consortium with a second data prime: CkksParameters(8192, (60, 40, 60), 40)",
        )
    per_chunk = handles.degree
    encoder = sealapi.CKKSEncoder(handles.context)
    encryptor = sealapi.Encryptor(handles.context, handles.secret_key)
    chunks: list[bytes] = []
    with ScratchFile() as scratch:
        for start in range(0, flat.size, per_chunk):
            part = flat[start : start + per_chunk]
            padded = np.zeros(part.size + part.size % 2)
            padded[: part.size] = part
            plain = sealapi.Plaintext()
            try:
                encoder.encode((padded[0::2] + 1j * padded[1::2]).tolist(), handles.scale, plain)
                encryptor.encrypt_symmetric(plain).save(scratch.path)
            except _SEAL_ERRORS as err:
                raise CkksError(
                    f"encrypting values {start}..{start + part.size - 1} failed ({err})",
                    expected="values small enough for the CKKS scale",
                    fix="clip the update or lower global_scale_bits",
                ) from None
            chunks.append(_HEADER.pack(CHUNK_MAGIC, part.size) + scratch.get())
    return chunks


def _load_chunk(
    handles: SealHandles,
    scratch: ScratchFile,
    data: object,
    *,
    where: str,
    expected_size: int | None,
) -> tuple[Any, int]:
    """One chunk as a SEAL ciphertext and the number of values it holds."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise CkksError(
            f"{where} is empty or not bytes ({type(data).__name__})",
            expected="a serialized CKKS ciphertext from encrypt_vector",
            fix=_FIX_RESEND,
        )
    data = bytes(data)
    if len(data) < _HEADER.size + _SEAL_HEADER.size or data[:4] != CHUNK_MAGIC:
        raise CkksError(
            f"{where} is not a format-2 CKKS chunk (no {CHUNK_MAGIC!r} marker): an older "
            "fedembed (before 2026-12-07, one TenSEAL vector per chunk) made it, or it is "
            "corrupt",
            expected="chunks from encrypt_vector of this fedembed version",
            fix="run the same fedembed version on every node; resend the update",
        )
    _, size = _HEADER.unpack_from(data)
    body = data[_HEADER.size :]
    magic, header_size, *_, total = _SEAL_HEADER.unpack_from(body)
    invalid = f"{where} is not a valid ciphertext for this context"
    if magic != _SEAL_MAGIC or header_size != _SEAL_HEADER.size or total != len(body):
        raise CkksError(
            f"{invalid} (bad SEAL header)",
            expected="a serialized CKKS ciphertext made under the consortium's key pair",
            fix=_FIX_RESEND,
        )
    ciphertext = sealapi.Ciphertext()
    try:
        ciphertext.load(handles.context, scratch.put(body))
        valid = (
            ciphertext.size() == 2
            and ciphertext.parms_id() == handles.context.first_parms_id()
            and ciphertext.scale == handles.scale
        )
    except _SEAL_ERRORS as err:
        raise CkksError(
            f"{invalid} ({err})",
            expected="a serialized CKKS ciphertext made under the consortium's key pair",
            fix="resend the update; check that the node's kit belongs to this consortium",
        ) from None
    if not valid:
        raise CkksError(
            f"{invalid} (another level, scale or size)",
            expected="a fresh ciphertext or sum from encrypt_vector/sum_encrypted",
            fix="all nodes must use the consortium's CKKS context",
        )
    if not 0 < size <= handles.degree or (expected_size is not None and size != expected_size):
        raise CkksError(
            f"{where} holds {size} values",
            expected=f"{expected_size or f'1..{handles.degree}'} values",
            fix="all nodes must encrypt vectors of the same length with the same parameters",
        )
    return ciphertext, size


def _sum_loaded(
    handles: SealHandles, scratch: ScratchFile, updates: Sequence[Sequence[bytes]]
) -> list[tuple[Any, int]]:
    if len(updates) == 0:
        raise CkksError(
            "no updates to sum", expected="at least one encrypted update", fix="wait for nodes"
        )
    counts = [len(u) for u in updates]
    if len(set(counts)) != 1 or counts[0] == 0:
        raise CkksError(
            f"the updates have different or zero chunk counts: {counts}",
            expected="the same non-zero number of chunks in every update",
            fix="all nodes must encrypt the same model size with the same CKKS parameters",
        )
    evaluator = sealapi.Evaluator(handles.context)
    last = counts[0] - 1
    result: list[tuple[Any, int]] = []
    for index in range(counts[0]):
        # Every chunk but the last is full; the last sets its own length.
        expected: int | None = handles.degree if index < last else None
        acc: Any = None
        for node, update in enumerate(updates):
            where = f"update {node}, chunk {index}"
            vector, size = _load_chunk(
                handles, scratch, update[index], where=where, expected_size=expected
            )
            if acc is None:
                acc, expected = vector, size
                continue
            try:
                evaluator.add_inplace(acc, vector)
            except _SEAL_ERRORS as err:  # pragma: no cover - _load_chunk checks the level
                raise CkksError(
                    f"{where} cannot be added to the others ({err})",
                    expected="ciphertexts with the same parameters and scale",
                    fix="all nodes must use the consortium's CKKS context",
                ) from None
        assert expected is not None
        result.append((acc, expected))
    return result


def sum_encrypted(updates: Sequence[Sequence[bytes]], public_context: bytes) -> list[bytes]:
    """Add encrypted updates chunk by chunk; needs only the public context.

    Args:
        updates: One list of serialized chunks per node, as from :func:`encrypt_vector`.
        public_context: The coordinator's serialized public context.

    Returns:
        The serialized chunks of the encrypted sum.

    Raises:
        CkksError: No updates, mismatched chunk counts or lengths, or a malformed
            ciphertext (the message names the update and chunk).
    """
    handles = seal_handles(public_context, what="public context", need_secret=False)
    result: list[bytes] = []
    with ScratchFile() as scratch:
        for ciphertext, size in _sum_loaded(handles, scratch, updates):
            ciphertext.save(scratch.path)
            result.append(_HEADER.pack(CHUNK_MAGIC, size) + scratch.get())
    return result


def _decrypt_loaded(
    handles: SealHandles, loaded: Sequence[tuple[Any, int]], length: int
) -> NDArray[np.float64]:
    encoder = sealapi.CKKSEncoder(handles.context)
    decryptor = sealapi.Decryptor(handles.context, handles.secret_key)
    out = np.empty(length, dtype=np.float64)
    start = 0
    for index, (ciphertext, size) in enumerate(loaded):
        plain = sealapi.Plaintext()
        try:
            decryptor.decrypt(ciphertext, plain)
            slots = np.asarray(encoder.decode_complex(plain), dtype=np.complex128)
        except _SEAL_ERRORS as err:  # pragma: no cover - _load_chunk checks the ciphertext
            raise CkksError(
                f"chunk {index} cannot be decrypted ({err})",
                expected="a ciphertext made under this context's key pair",
                fix="check that the ciphertexts belong to this consortium",
            ) from None
        values = np.empty(slots.size * 2, dtype=np.float64)
        values[0::2], values[1::2] = slots.real, slots.imag
        out[start : start + size] = values[:size]
        start += size
    bound = _bound(handles)
    if not np.all(np.abs(out) <= bound):
        raise CkksError(
            f"the decrypted sum holds values beyond +-{bound:.6g}, so it may have wrapped "
            "modulo the ciphertext modulus; it is not released",
            expected=f"a sum within +-{bound:.6g}",
            fix="nodes must encrypt through encrypt_vector with summands set to the member "
            "count; a node that did not deviates from the protocol",
        )
    return out


def _check_length(length: object, chunks: int, per_chunk: int) -> int:
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
        raise CkksError(
            f"length is {length!r}", expected="a positive integer", fix="pass the model size"
        )
    if chunks != math.ceil(int(length) / per_chunk):
        raise CkksError(
            f"{chunks} chunks for {length} values",
            expected=f"{math.ceil(int(length) / per_chunk)} chunks of up to {per_chunk} values",
            fix="pass the length the vector had when it was encrypted",
        )
    return int(length)


def _sizes(length: int, per_chunk: int) -> list[int]:
    full, rest = divmod(length, per_chunk)
    return [per_chunk] * full + ([rest] if rest else [])


def decrypt_vector(
    chunks: Sequence[bytes], secret_context: bytes, length: int
) -> NDArray[np.float64]:
    """Decrypt serialized chunks (e.g. an encrypted sum) into a flat float64 vector.

    Args:
        chunks: Serialized ciphertexts, as from :func:`sum_encrypted`.
        secret_context: A member node's serialized secret context.
        length: The expected number of values (the model size).

    Raises:
        CkksError: The context holds no secret key, a chunk is malformed, the chunks
            do not hold exactly ``length`` values, or the sum left the room of the
            parameters (:func:`max_abs_sum`).
    """
    handles = seal_handles(secret_context, what="context", need_secret=True)
    length = _check_length(length, len(chunks), handles.degree)
    with ScratchFile() as scratch:
        loaded = [
            _load_chunk(handles, scratch, data, where=f"chunk {index}", expected_size=size)
            for index, (data, size) in enumerate(
                zip(chunks, _sizes(length, handles.degree), strict=True)
            )
        ]
    return _decrypt_loaded(handles, loaded, length)


def decrypt_sum(
    updates: Sequence[Sequence[bytes]], secret_context: bytes, length: int
) -> NDArray[np.float64]:
    """Sum encrypted updates and decrypt the sum (:func:`sum_encrypted` then decrypt).

    The decrypting node's one step: the sum is never serialized in between.

    Raises:
        CkksError: As :func:`sum_encrypted` and :func:`decrypt_vector`.
    """
    handles = seal_handles(secret_context, what="context", need_secret=True)
    with ScratchFile() as scratch:
        loaded = _sum_loaded(handles, scratch, updates)
    length = _check_length(length, len(loaded), handles.degree)
    if [size for _, size in loaded] != _sizes(length, handles.degree):
        raise CkksError(
            f"the updates hold {sum(size for _, size in loaded)} values",
            expected=f"{length} values",
            fix="pass the length the vectors had when they were encrypted",
        )
    return _decrypt_loaded(handles, loaded, length)
