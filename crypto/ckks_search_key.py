"""The query gateway's CKKS search key: exports contexts, encrypts queries, decrypts scores.

The secret half of :mod:`crypto.ckks_search`: the gateway keeps it (the key
file ``ckks_search.key`` of its kit, a secret file: mode 0600, refused when group or
others may access it, see :mod:`crypto.secret_files`), hands nodes the public context and the
store the evaluation context, neither of which decrypts anything.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tenseal as ts
import tenseal.sealapi as seal
from numpy.typing import ArrayLike, NDArray

from crypto.ckks_search import (
    COEFF_MODULUS_BITS,
    POLY_MODULUS_DEGREE,
    SCALE_BITS,
    BlockLayout,
    check_vectors,
    context_error,
    seal_ciphertext,
)
from crypto.errors import CryptoInputError, KeyManagementError
from crypto.secret_files import read_secret_file, write_secret_file

__all__ = ["KEY_FILE_MAGIC", "CkksSearchKey", "load_ckks_key", "save_ckks_key"]

logger = logging.getLogger(__name__)

KEY_FILE_MAGIC = b"FECKKSK1"  # key file: magic || u32 dimension || secret context
_KEY_HEAD = struct.Struct("<8sI")


class CkksSearchKey:
    """The gateway's CKKS key: exports contexts, encrypts queries, decrypts scores.

    Its secret never leaves except through :meth:`to_bytes` (which the caller seals).

    Args:
        context: A private TenSEAL context with Galois and relinearisation keys.
        dimension: Vector width.
    """

    def __init__(self, context: ts.Context, *, dimension: int) -> None:
        if not context.is_private():
            raise KeyManagementError(
                "a CKKS search key needs the secret key; this context has none",
                expected="the gateway's private CKKS context",
                fix="load the gateway's key file, not a node's public context",
            )
        self.layout = BlockLayout(dimension)
        self._context = context
        self._decryptor = seal.Decryptor(context.seal_context().data, context.secret_key().data)
        self._encoder = seal.CKKSEncoder(context.seal_context().data)

    @classmethod
    def generate(cls, *, dimension: int) -> CkksSearchKey:
        """A fresh key for ``dimension``-wide vectors (128-bit ring-LWE parameters)."""
        context = ts.context(
            ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=list(COEFF_MODULUS_BITS)
        )
        context.global_scale = 2.0**SCALE_BITS
        context.generate_galois_keys()
        context.generate_relin_keys()
        logger.info("ckks-search: generated a key for %d-wide vectors", dimension)
        return cls(context, dimension=dimension)

    def to_bytes(self) -> bytes:
        """The secret context (keep it sealed: it decrypts every document)."""
        return bytes(self._context.serialize(save_secret_key=True))

    @classmethod
    def from_bytes(cls, data: bytes, *, dimension: int) -> CkksSearchKey:
        """Load :meth:`to_bytes` output."""
        try:
            context = ts.context_from(data)
        except Exception as exc:
            raise context_error("secret context", exc) from exc
        return cls(context, dimension=dimension)

    def public_context(self) -> bytes:
        """What nodes get: the parameters and the public key (encrypt only)."""
        return self._export(public_key=True, evaluation_keys=False)

    def evaluation_context(self) -> bytes:
        """What the store gets: the parameters, Galois and relinearisation keys."""
        return self._export(public_key=False, evaluation_keys=True)

    def _export(self, *, public_key: bool, evaluation_keys: bool) -> bytes:
        """The context without the secret key, with the chosen public parts."""
        return bytes(
            self._context.serialize(
                save_public_key=public_key,
                save_secret_key=False,
                save_galois_keys=evaluation_keys,
                save_relin_keys=evaluation_keys,
            )
        )

    def encrypt_query(self, vector: ArrayLike) -> bytes:
        """The query ciphertext: ``q[s mod d]`` in every slot ``s``."""
        d = self.layout.dimension
        q = check_vectors(np.asarray(vector, dtype=np.float64).reshape(1, -1), d, "query")[0]
        tiled = np.resize(q, self.layout.slots)
        return bytes(ts.ckks_vector(self._context, tiled.tolist()).serialize())

    def decrypt_scores(
        self, results: Sequence[bytes], counts: Sequence[int]
    ) -> NDArray[np.float64]:
        """The inner products of the query with every document, in block order."""
        if len(results) != len(counts):
            raise CryptoInputError(
                f"{len(results)} encrypted score vectors for {len(counts)} blocks",
                expected="one score vector per block",
                fix="ask the store again; it answers one ciphertext per block",
            )
        parts = []
        for data, count in zip(results, counts, strict=True):
            try:
                ciphertext = seal_ciphertext(self._context, data)
                plain = seal.Plaintext()
                self._decryptor.decrypt(ciphertext, plain)
                values = np.asarray(self._encoder.decode_double(plain))
            except Exception as exc:
                raise CryptoInputError(
                    f"an encrypted score vector could not be decrypted ({type(exc).__name__})",
                    expected="the store's answer to a query encrypted under this key",
                    fix="check that the store holds blocks of this key's public context",
                ) from exc
            parts.append(values[:count])
        return np.concatenate(parts) if parts else np.zeros(0)


def save_ckks_key(key: CkksSearchKey, path: Path) -> None:
    """Write the gateway's key file (owner-only permissions; it decrypts every document)."""
    data = _KEY_HEAD.pack(KEY_FILE_MAGIC, key.layout.dimension) + key.to_bytes()
    write_secret_file(Path(path), data)
    logger.info("ckks-search: wrote a key file for %d-wide vectors", key.layout.dimension)


def load_ckks_key(path: Path) -> CkksSearchKey:
    """Read :func:`save_ckks_key` output.

    Raises:
        SecretFileError: Group or others may access the file, or another user owns it
            (:mod:`crypto.secret_files`).
        KeyManagementError: The file is missing, unreadable or not a CKKS key file.
    """
    path = Path(path)
    try:
        data = read_secret_file(path, what="CKKS search key file")
    except OSError as exc:
        raise KeyManagementError(
            f"cannot read the CKKS key file {path} ({exc.strerror})",
            expected="the gateway's CKKS key file (fedembed index ckks-keygen writes it)",
            fix="point FEDEMBED_INDEX_CKKS_KEY_FILE at the gateway kit's ckks_search.key",
        ) from None
    try:
        magic, dimension = _KEY_HEAD.unpack_from(data, 0)
    except struct.error:
        magic, dimension = b"", 0
    if magic != KEY_FILE_MAGIC:
        raise KeyManagementError(
            f"{path} is not a fedembed CKKS key file",
            expected="a file written by fedembed index ckks-keygen",
            fix="point FEDEMBED_INDEX_CKKS_KEY_FILE at the gateway kit's ckks_search.key",
        )
    return CkksSearchKey.from_bytes(data[_KEY_HEAD.size :], dimension=dimension)
