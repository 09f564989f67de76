"""CKKS secure aggregation helpers (TenSEAL): encrypt, sum under encryption, decrypt.

The consortium shares one CKKS key pair. Every member node holds the *secret* context
(it encrypts its update and decrypts the aggregate); the coordinator holds only the
*public* context, with which it can add ciphertexts but never decrypt one, so it sees no
single member's update in the clear (the honest-but-curious coordinator of ARCHITECTURE.md).

A flat update vector is cut into chunks of ``poly_modulus_degree / 2`` values (the CKKS
slot count); each chunk becomes one ciphertext, serialized to bytes. Sums are taken
chunk by chunk. Nodes that want a weighted mean pre-multiply their update by their
weight (``encrypt_vector(..., scale=w)``) and divide the decrypted sum by the total
weight.

Everything here is pure crypto on bytes and NumPy arrays: no Flower import, so the
ServerApp, ClientApp and tests can all use it.

Limits: a ciphertext made under another consortium's key pair with the same parameters
is indistinguishable from a valid one to a holder of the public context only; it adds
without error and decrypts to noise. Bind updates to the consortium at the transport
layer (node authentication) and compare :func:`context_fingerprint` values.

The parameters live in :mod:`crypto.ckks_parameters` and the key pairs (contexts)
in :mod:`crypto.ckks_context`; their public names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tenseal as ts
from numpy.typing import NDArray

from crypto.ckks_context import (
    TENSEAL_ERRORS,
    context_fingerprint,
    context_slots,
    is_private_context,
    load_context,
    make_contexts,
    slot_count,
)
from crypto.ckks_parameters import (
    MAX_COEFF_MODULUS_BITS,
    CkksError,
    CkksParameters,
    num_chunks,
)

__all__ = [
    "MAX_COEFF_MODULUS_BITS",
    "CkksError",
    "CkksParameters",
    "context_fingerprint",
    "decrypt_vector",
    "encrypt_vector",
    "is_private_context",
    "make_contexts",
    "num_chunks",
    "slot_count",
    "sum_encrypted",
]


def encrypt_vector(
    values: NDArray[np.floating[Any]] | NDArray[np.integer[Any]],
    secret_context: bytes,
    *,
    scale: float = 1.0,
) -> list[bytes]:
    """Encrypt a vector (flattened) as ``ceil(len / slots)`` serialized CKKS ciphertexts.

    Args:
        values: The update; any shape, flattened in C order. Must be finite.
        secret_context: The node's serialized context (the public one also encrypts).
        scale: Factor applied before encryption, e.g. the node's aggregation weight.

    Raises:
        CkksError: Empty or non-finite input, a bad scale, or an unusable context.
    """
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
    ctx = load_context(secret_context, what="context", need_secret=False)
    slots = context_slots(ctx)
    chunks: list[bytes] = []
    for start in range(0, flat.size, slots):
        try:
            vector = ts.ckks_vector(ctx, flat[start : start + slots].tolist())
        except TENSEAL_ERRORS as err:
            raise CkksError(
                f"encrypting values {start}..{min(start + slots, flat.size) - 1} failed ({err})",
                expected="values small enough for the CKKS scale",
                fix="clip the update or lower global_scale_bits",
            ) from None
        chunks.append(bytes(vector.serialize()))
    return chunks


def _load_chunk(ctx: Any, data: object, *, where: str, expected_size: int | None) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise CkksError(
            f"{where} is empty or not bytes ({type(data).__name__})",
            expected="a serialized CKKS ciphertext from encrypt_vector",
            fix="resend the update; drop the node from this round if it persists",
        )
    try:
        vector = ts.ckks_vector_from(ctx, bytes(data))
        size = int(vector.size())
    except TENSEAL_ERRORS as err:
        raise CkksError(
            f"{where} is not a valid ciphertext for this context ({err})",
            expected="a serialized CKKS ciphertext made under the consortium's key pair",
            fix="resend the update; check that the node's kit belongs to this consortium",
        ) from None
    if size == 0 or (expected_size is not None and size != expected_size):
        raise CkksError(
            f"{where} holds {size} values",
            expected=f"{expected_size or 'a positive number of'} values",
            fix="all nodes must encrypt vectors of the same length with the same parameters",
        )
    return vector


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
    ctx = load_context(public_context, what="public context", need_secret=False)
    slots = context_slots(ctx)
    last = counts[0] - 1
    result: list[bytes] = []
    for index in range(counts[0]):
        # Every chunk but the last is a full ciphertext; the last sets its own length.
        expected: int | None = slots if index < last else None
        acc: Any = None
        for node, update in enumerate(updates):
            where = f"update {node}, chunk {index}"
            vector = _load_chunk(ctx, update[index], where=where, expected_size=expected)
            if acc is None:
                acc, expected = vector, int(vector.size())
                continue
            try:
                acc.add_(vector)
            except TENSEAL_ERRORS as err:
                raise CkksError(
                    f"{where} cannot be added to the others ({err})",
                    expected="ciphertexts with the same parameters and scale",
                    fix="all nodes must use the consortium's CKKS context",
                ) from None
        result.append(bytes(acc.serialize()))
    return result


def decrypt_vector(
    chunks: Sequence[bytes], secret_context: bytes, length: int
) -> NDArray[np.float64]:
    """Decrypt serialized chunks (e.g. an encrypted sum) into a flat float64 vector.

    Args:
        chunks: Serialized ciphertexts, as from :func:`sum_encrypted`.
        secret_context: A member node's serialized secret context.
        length: The expected number of values (the model size).

    Raises:
        CkksError: The context holds no secret key, a chunk is malformed, or the chunks
            do not hold exactly ``length`` values.
    """
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length <= 0:
        raise CkksError(
            f"length is {length!r}", expected="a positive integer", fix="pass the model size"
        )
    ctx = load_context(secret_context, what="context", need_secret=True)
    slots = context_slots(ctx)
    sizes = _chunk_sizes(int(length), slots)
    if len(chunks) != len(sizes):
        raise CkksError(
            f"{len(chunks)} chunks for {length} values",
            expected=f"{len(sizes)} chunks of up to {slots} values",
            fix="pass the length the vector had when it was encrypted",
        )
    out = np.empty(int(length), dtype=np.float64)
    start = 0
    for index, (data, size) in enumerate(zip(chunks, sizes, strict=True)):
        vector = _load_chunk(ctx, data, where=f"chunk {index}", expected_size=size)
        try:
            out[start : start + size] = vector.decrypt()
        except TENSEAL_ERRORS as err:
            raise CkksError(
                f"chunk {index} cannot be decrypted ({err})",
                expected="a ciphertext made under this context's key pair",
                fix="check that the ciphertexts belong to this consortium",
            ) from None
        start += size
    return out


def _chunk_sizes(length: int, slots: int) -> list[int]:
    full, rest = divmod(length, slots)
    return [slots] * full + ([rest] if rest else [])
