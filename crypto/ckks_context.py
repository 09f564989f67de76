"""CKKS key pairs (TenSEAL contexts): creation, checked loading, inspection.

:func:`make_contexts` creates the consortium's key pair as a *secret* context (member
nodes: encrypt and decrypt) and a *public* one (coordinator: add only).
:func:`context_fingerprint` lets nodes and coordinator check that they share one key
pair. ``load_context`` parses serialized context bytes into TenSEAL objects, turning
TenSEAL's errors into :class:`CkksError`.

:func:`seal_handles` opens the same bytes as SEAL objects (TenSEAL's ``sealapi``) for
:mod:`crypto.ckks_aggregation`, which needs what TenSEAL's vectors do not offer:
secret-key encryption into *seeded* ciphertexts (half the size) and two values per
slot. It reads TenSEAL's context format (a small protobuf: the SEAL encryption
parameters, the scale, the SEAL secret key), builds the SEAL context at
``sec_level_type.tc128`` (SEAL refuses parameters above the HomomorphicEncryption.org
bound) and loads the secret key from an anonymous in-memory file
(:class:`ScratchFile`), so no key material is written to a disk.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import tenseal as ts
import tenseal.sealapi as sealapi

from crypto.ckks_parameters import CkksError, CkksParameters

__all__ = [
    "TENSEAL_ERRORS",
    "ScratchFile",
    "SealHandles",
    "context_fingerprint",
    "context_slots",
    "is_private_context",
    "load_context",
    "make_contexts",
    "seal_handles",
    "slot_count",
]

TENSEAL_ERRORS = (ValueError, RuntimeError, TypeError, OverflowError, MemoryError)


def make_contexts(params: CkksParameters | None = None) -> tuple[bytes, bytes]:
    """Create a fresh CKKS key pair.

    Returns:
        ``(secret_context, public_context)`` as bytes. The secret context holds the
        secret key (for member nodes only: they encrypt with it); the public context
        holds the public key alone (no secret, relinearization or Galois keys): enough
        to add ciphertexts, never to decrypt one.
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


def _require_bytes(data: object, *, what: str) -> None:
    """Raise :class:`CkksError` unless ``data`` is non-empty bytes of a context."""
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise CkksError(
            f"the {what} is empty or not bytes ({type(data).__name__})",
            expected="the bytes of a serialized TenSEAL CKKS context",
            fix="pass the content of the kit's .ctx file",
        )


def load_context(data: bytes, *, what: str, need_secret: bool) -> Any:
    """Parse serialized context bytes into a TenSEAL CKKS context (CkksError if invalid).

    ``what`` names the input in errors; ``need_secret`` requires the secret key.
    """
    _require_bytes(data, what=what)
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
    _require_bytes(context, what="context")
    return _context_facts(bytes(context))[0]


@functools.lru_cache(maxsize=8)
def _context_facts(data: bytes) -> tuple[bool, str]:
    """(holds the secret key, fingerprint) of serialized context ``data``, parsed once.

    A context as :func:`make_contexts` writes it (parameters, a public part with the
    public key and the scale but no evaluation keys, optionally the secret key) is read
    through :func:`seal_handles`, which the node needs for encryption anyway: the public
    serialization TenSEAL would write is then exactly the first two fields. Any other
    context is parsed by TenSEAL (tens of milliseconds a process).
    """
    try:
        fields = _raw_fields(data)
        numbers = [number for number, _, _ in fields]
        second = fields[1][1] if len(fields) > 1 else b""
        public = _proto_fields(second) if isinstance(second, bytes) else {}
    except ValueError:
        numbers, public = [], {}
    if numbers in ([1, 2], [1, 2, 3]) and 1 in public and set(public) <= {1, 2, 3}:
        handles = _seal_handles(data)  # checks the parameters, the scale, the secret key
        public_part = data[: fields[1][2]]  # the parameters and the public part, as written
        return handles.secret_key is not None, hashlib.sha256(public_part).hexdigest()
    ctx = load_context(data, what="context", need_secret=False)
    serialized = ctx.serialize(
        save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
    )
    # The serialization (parameters + public key) is deterministic for a given key pair.
    return bool(ctx.is_private()), hashlib.sha256(bytes(serialized)).hexdigest()


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
    _require_bytes(context, what="context")
    return _context_facts(bytes(context))[1]


# -- SEAL objects of a context (for crypto.ckks_aggregation) ------------------------------


class ScratchFile:
    """An anonymous in-memory file that SEAL's path-based ``save``/``load`` can use.

    TenSEAL's ``sealapi`` reads and writes SEAL objects through file paths only. On Linux
    this is a ``memfd`` (RAM, no name, gone when closed) reached as ``/proc/self/fd/N``;
    elsewhere a file in a private temporary folder (0700), removed on :meth:`close`.
    """

    def __init__(self) -> None:
        self._folder: str | None = None
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            self._fd = os.memfd_create("fedembed-ckks", os.MFD_CLOEXEC)
            self.path = f"/proc/self/fd/{self._fd}"
        else:  # pragma: no cover - not Linux
            self._folder = tempfile.mkdtemp(prefix="fedembed-ckks-")
            self.path = os.path.join(self._folder, "scratch")
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)

    def put(self, data: bytes) -> str:
        """Replace the content with ``data``; returns the path to load it from."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        return self.path

    def get(self) -> bytes:
        """The current content (what SEAL saved to :attr:`path`)."""
        return os.pread(self._fd, os.fstat(self._fd).st_size, 0)

    def close(self) -> None:
        """Empty and release the file."""
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        if self._folder is not None:  # pragma: no cover - not Linux
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ScratchFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class SealHandles:
    """SEAL objects of one serialized context.

    Attributes:
        context: The ``sealapi.SEALContext`` (checked at 128-bit security).
        secret_key: The ``sealapi.SecretKey``, or None for a public context.
        scale: The context's encoding scale (``2^global_scale_bits``).
        data_modulus_log2: log2 of the modulus a fresh ciphertext lives under (the
            product of every prime but the last).
        degree: The ring degree N (N/2 complex slots, N real values per ciphertext).
    """

    context: Any
    secret_key: Any
    scale: float
    data_modulus_log2: float
    degree: int


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _raw_fields(data: bytes) -> list[tuple[int, int | bytes, int]]:
    """(number, value, end offset) of each field of one protobuf message, in order.

    Wire types 0, 1, 2 and 5; anything else or a truncated field is a ValueError.
    """
    fields: list[tuple[int, int | bytes, int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos : pos + width], pos + width
        else:
            raise ValueError(f"wire type {wire}")
        fields.append((number, value, pos))
    return fields


def _proto_fields(data: bytes) -> dict[int, Any]:
    """The fields of one protobuf message (last value wins; wire types 0, 1, 2, 5)."""
    return {number: value for number, value, _ in _raw_fields(data)}


def _double(field: object) -> float:
    if not isinstance(field, bytes) or len(field) != 8:
        raise ValueError("the context holds no encoding scale")
    return float(memoryview(field).cast("d")[0])


def seal_handles(data: bytes, *, what: str, need_secret: bool) -> SealHandles:
    """SEAL objects of serialized context ``data`` (cached; :class:`CkksError` if invalid).

    ``what`` names the input in errors; ``need_secret`` requires the secret key.
    """
    _require_bytes(data, what=what)
    handles = _seal_handles(bytes(data))
    if need_secret and handles.secret_key is None:
        raise CkksError(
            f"the {what} holds no secret key",
            expected="the secret context of a member node (ckks_secret.ctx)",
            fix="encrypt and decrypt on a member node with its node kit; the coordinator "
            "only adds ciphertexts",
        )
    return handles


@functools.lru_cache(maxsize=8)
def _seal_handles(data: bytes) -> SealHandles:
    what = "CKKS context"
    try:
        fields = _proto_fields(data)
        public = _proto_fields(fields.get(2, b""))
        private = _proto_fields(fields.get(3, b""))
        scale = _double(public.get(3))
        with ScratchFile() as scratch:
            parms = sealapi.EncryptionParameters(sealapi.SCHEME_TYPE.CKKS)
            parms.load(scratch.put(fields[1]))
            if parms.scheme() != sealapi.SCHEME_TYPE.CKKS:
                raise ValueError("not a CKKS context")
            context = sealapi.SEALContext(parms, True, sealapi.SEC_LEVEL_TYPE.TC128)
            if not context.parameters_set():
                raise CkksError(
                    f"the {what} has parameters SEAL refuses at 128-bit security "
                    f"({context.parameters_error_message()})",
                    expected="CKKS parameters within the HomomorphicEncryption.org bound "
                    "(crypto.ckks_parameters.MAX_COEFF_MODULUS_BITS)",
                    fix="re-provision with the default CkksParameters()",
                )
            secret_key = None
            if private.get(1):
                secret_key = sealapi.SecretKey()
                secret_key.load(context, scratch.put(private[1]))
                scratch.put(b"")
    except CkksError:
        raise
    except (KeyError, ValueError, *TENSEAL_ERRORS) as err:
        raise CkksError(
            f"the {what} cannot be parsed ({err})",
            expected="the bytes of a serialized TenSEAL CKKS context",
            fix="pass the content of the kit's .ctx file; re-provision if it is corrupt",
        ) from None
    if not (math.isfinite(scale) and scale >= 1.0):
        raise CkksError(
            f"the {what} has encoding scale {scale}",
            expected="a context made by make_contexts (scale 2^global_scale_bits)",
            fix="re-provision with the default CkksParameters()",
        )
    first = context.first_context_data()
    data_log2 = sum(math.log2(p.value()) for p in first.parms().coeff_modulus())
    degree = int(first.parms().poly_modulus_degree())
    return SealHandles(context, secret_key, scale, data_log2, degree)
