"""CKKS key pairs (TenSEAL contexts): creation, checked loading, inspection.

:func:`make_contexts` creates the consortium's key pair as a *secret* context (member
nodes: encrypt and decrypt) and a *public* one (coordinator: encrypt and add only).
:func:`context_fingerprint` lets nodes and coordinator check that they share one key
pair. ``load_context`` parses serialized context bytes into TenSEAL objects for
:mod:`crypto.ckks_aggregation`, turning TenSEAL's errors into :class:`CkksError`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import tenseal as ts

from crypto.ckks_parameters import CkksError, CkksParameters

__all__ = [
    "TENSEAL_ERRORS",
    "context_fingerprint",
    "context_slots",
    "is_private_context",
    "load_context",
    "make_contexts",
    "slot_count",
]

TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


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
    except TENSEAL_ERRORS as err:  # pragma: no cover - parameters are validated above
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


def load_context(data: bytes, *, what: str, need_secret: bool) -> Any:
    """Parse serialized context bytes into a TenSEAL CKKS context (CkksError if invalid).

    ``what`` names the input in errors; ``need_secret`` requires the secret key.
    """
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise CkksError(
            f"the {what} is empty or not bytes ({type(data).__name__})",
            expected="the bytes of a serialized TenSEAL CKKS context",
            fix="pass the content of the kit's .ctx file",
        )
    try:
        ctx = ts.context_from(bytes(data))
        scheme = ctx.seal_context().data.key_context_data().parms().scheme()
    except TENSEAL_ERRORS as err:
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
    return bool(load_context(context, what="context", need_secret=False).is_private())


def slot_count(context: bytes) -> int:
    """Values per ciphertext for a serialized context (``poly_modulus_degree // 2``)."""
    ctx = load_context(context, what="context", need_secret=False)
    return context_slots(ctx)


def context_slots(ctx: Any) -> int:
    """The number of CKKS slots (half the polynomial modulus degree) of a loaded context."""
    return int(ctx.seal_context().data.key_context_data().parms().poly_modulus_degree()) // 2


def context_fingerprint(context: bytes) -> str:
    """SHA-256 of the *public* part of a context, equal for the secret and public forms.

    Nodes and coordinator compare it to check that they use the same key pair.
    """
    ctx = load_context(context, what="context", need_secret=False)
    public = ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    # The serialization (parameters + public key) is deterministic for a given key pair.
    return hashlib.sha256(bytes(public)).hexdigest()
