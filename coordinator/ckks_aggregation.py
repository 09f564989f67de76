"""CKKS secure aggregation helpers (TenSEAL): encrypt, sum under encryption, decrypt.

The consortium shares one CKKS key pair. Every member node holds the *secret* context
(it encrypts its update and decrypts the aggregate); the coordinator holds only the
*public* context, with which it can add ciphertexts but never decrypt one, so it sees no
single member's update in the clear (the honest-but-curious coordinator of DESIGN.md).

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
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tenseal as ts
from numpy.typing import NDArray

from embedding_core.errors import FedembedError

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

#: Largest total coefficient-modulus size (bits) per polynomial degree that keeps
#: 128-bit security (SEAL's ``CoeffModulus::MaxBitCount``, HomomorphicEncryption.org).
MAX_COEFF_MODULUS_BITS: Mapping[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
}

_TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


class CkksError(FedembedError):
    """CKKS parameters, a context or a ciphertext is invalid or does not fit."""


def _default_coeff_mod_bit_sizes() -> tuple[int, ...]:
    return (60, 40, 40, 60)


@dataclass(frozen=True)
class CkksParameters:
    """CKKS encryption parameters of a consortium.

    The defaults (degree 8192, moduli 60+40+40+60 bits, scale 2^40) give 128-bit
    security, 4,096 slots per ciphertext and about 1e-7 absolute precision on sums; no
    multiplication depth is needed for secure aggregation.

    Args:
        poly_modulus_degree: Ring dimension N, a power of two in 1024..32768. Each
            ciphertext holds N/2 values.
        coeff_mod_bit_sizes: Bit sizes of the coefficient-modulus primes (20..60 each,
            at least two); their sum must stay within the 128-bit-security bound for N.
        global_scale_bits: log2 of the encoding scale (20..60); precision of each value.
    """

    poly_modulus_degree: int = 8192
    coeff_mod_bit_sizes: tuple[int, ...] = field(default_factory=_default_coeff_mod_bit_sizes)
    global_scale_bits: int = 40

    def __post_init__(self) -> None:
        fix = "use the defaults CkksParameters() unless you know CKKS parameter selection"
        degree = self.poly_modulus_degree
        if isinstance(degree, bool) or not isinstance(degree, int):
            raise CkksError(f"poly_modulus_degree is {degree!r}", expected="an integer", fix=fix)
        if degree not in MAX_COEFF_MODULUS_BITS:
            raise CkksError(
                f"poly_modulus_degree {degree} is not supported",
                expected=f"one of {', '.join(map(str, MAX_COEFF_MODULUS_BITS))}",
                fix=fix,
            )
        try:
            sizes = tuple(self.coeff_mod_bit_sizes)
        except TypeError:
            raise CkksError(
                f"coeff_mod_bit_sizes is {self.coeff_mod_bit_sizes!r}",
                expected="a sequence of integers such as (60, 40, 40, 60)",
                fix=fix,
            ) from None
        object.__setattr__(self, "coeff_mod_bit_sizes", sizes)
        if len(sizes) < 2 or any(
            isinstance(s, bool) or not isinstance(s, int) or not 20 <= s <= 60 for s in sizes
        ):
            raise CkksError(
                f"coeff_mod_bit_sizes {sizes!r} is invalid",
                expected="at least two integers, each between 20 and 60",
                fix=fix,
            )
        limit = MAX_COEFF_MODULUS_BITS[degree]
        if sum(sizes) > limit:
            raise CkksError(
                f"coeff_mod_bit_sizes sum to {sum(sizes)} bits, above the 128-bit-security "
                f"limit of {limit} bits for poly_modulus_degree {degree}",
                expected=f"a total of at most {limit} bits",
                fix="use fewer or smaller primes, or a larger poly_modulus_degree",
            )
        scale = self.global_scale_bits
        if isinstance(scale, bool) or not isinstance(scale, int) or not 20 <= scale <= 60:
            raise CkksError(
                f"global_scale_bits is {scale!r}", expected="an integer between 20 and 60", fix=fix
            )
        headroom = sum(sizes[:-1]) - scale
        if headroom < 20:
            raise CkksError(
                f"global_scale_bits {scale} leaves only {headroom} bits for the integer part "
                "of the values",
                expected="sum(coeff_mod_bit_sizes[:-1]) - global_scale_bits >= 20",
                fix="lower global_scale_bits or add a prime",
            )

    @property
    def slot_count(self) -> int:
        """Values per ciphertext (``poly_modulus_degree // 2``)."""
        return self.poly_modulus_degree // 2

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for kit manifests)."""
        return {
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
            "global_scale_bits": self.global_scale_bits,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CkksParameters:
        """Inverse of :meth:`as_dict`; raises :class:`CkksError` on a malformed mapping."""
        try:
            return cls(
                poly_modulus_degree=data["poly_modulus_degree"],
                coeff_mod_bit_sizes=tuple(data["coeff_mod_bit_sizes"]),
                global_scale_bits=data["global_scale_bits"],
            )
        except (KeyError, TypeError) as err:
            raise CkksError(
                f"CKKS parameters {dict(data)!r} are malformed ({err})",
                expected="keys poly_modulus_degree, coeff_mod_bit_sizes, global_scale_bits",
                fix="regenerate the kit with `provision`",
            ) from None


def make_contexts(params: CkksParameters | None = None) -> tuple[bytes, bytes]:
    """Create a fresh CKKS key pair.

    Returns:
        ``(secret_context, public_context)`` as bytes. The secret context holds the
        secret key (for member nodes only); the public context holds the public key
        alone (no secret, relinearization or Galois keys): enough to encrypt and add.
    """
    params = params or CkksParameters()
    try:
        ctx = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
    except _TENSEAL_ERRORS as err:  # pragma: no cover - parameters are validated above
        raise CkksError(
            f"TenSEAL rejected the CKKS parameters {params.as_dict()} ({err})",
            fix="use the defaults CkksParameters()",
        ) from None
    ctx.global_scale = float(2**params.global_scale_bits)
    secret = ctx.serialize(
        save_public_key=True, save_secret_key=True, save_galois_keys=False, save_relin_keys=False
    )
    public = ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    return bytes(secret), bytes(public)


def _load_context(data: bytes, *, what: str, need_secret: bool) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise CkksError(
            f"the {what} is empty or not bytes ({type(data).__name__})",
            expected="the bytes of a serialized TenSEAL CKKS context",
            fix="pass the content of the kit's .ctx file",
        )
    try:
        ctx = ts.context_from(bytes(data))
        scheme = ctx.seal_context().data.key_context_data().parms().scheme()
    except _TENSEAL_ERRORS as err:
        raise CkksError(
            f"the {what} cannot be parsed ({err})",
            expected="the bytes of a serialized TenSEAL CKKS context",
            fix="pass the content of the kit's .ctx file; re-provision if it is corrupt",
        ) from None
    if getattr(scheme, "name", None) != "CKKS":
        raise CkksError(
            f"the {what} is a {getattr(scheme, 'name', scheme)} context, not a CKKS one",
            expected="a CKKS context",
            fix="pass the consortium's CKKS context",
        )
    if need_secret and not ctx.is_private():
        raise CkksError(
            f"the {what} holds no secret key, so it cannot decrypt",
            expected="the secret context of a member node (ckks_secret.ctx)",
            fix="decrypt on a member node with its node kit; the coordinator cannot decrypt",
        )
    return ctx


def is_private_context(context: bytes) -> bool:
    """Whether a serialized CKKS context holds the secret key (can decrypt).

    Raises:
        CkksError: The bytes are not a CKKS context.
    """
    return bool(_load_context(context, what="context", need_secret=False).is_private())


def slot_count(context: bytes) -> int:
    """Values per ciphertext for a serialized context (``poly_modulus_degree // 2``)."""
    ctx = _load_context(context, what="context", need_secret=False)
    return _slots(ctx)


def _slots(ctx: Any) -> int:
    return int(ctx.seal_context().data.key_context_data().parms().poly_modulus_degree()) // 2


def num_chunks(length: int, params: CkksParameters | None = None) -> int:
    """Number of ciphertexts a vector of ``length`` values becomes."""
    return math.ceil(length / (params or CkksParameters()).slot_count)


def context_fingerprint(context: bytes) -> str:
    """SHA-256 of the *public* part of a context, equal for the secret and public forms.

    Nodes and coordinator compare it to check that they use the same key pair.
    """
    ctx = _load_context(context, what="context", need_secret=False)
    public = ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    # The serialization (parameters + public key) is deterministic for a given key pair.
    return hashlib.sha256(bytes(public)).hexdigest()


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
    ctx = _load_context(secret_context, what="context", need_secret=False)
    slots = _slots(ctx)
    chunks: list[bytes] = []
    for start in range(0, flat.size, slots):
        try:
            vector = ts.ckks_vector(ctx, flat[start : start + slots].tolist())
        except _TENSEAL_ERRORS as err:
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
    except _TENSEAL_ERRORS as err:
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
    ctx = _load_context(public_context, what="public context", need_secret=False)
    slots = _slots(ctx)
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
            except _TENSEAL_ERRORS as err:
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
    ctx = _load_context(secret_context, what="context", need_secret=True)
    slots = _slots(ctx)
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
        except _TENSEAL_ERRORS as err:
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
