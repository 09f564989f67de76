"""CKKS encryption parameters of a consortium, and their 128-bit-security checks.

:class:`CkksParameters` (ring degree, coefficient-modulus primes, encoding scale) is
validated on construction against :data:`MAX_COEFF_MODULUS_BITS` and round-trips through
a JSON-ready dict for kit manifests. :class:`CkksError` is the error of every CKKS
helper. Pure Python: no TenSEAL or Flower import.

Why the defaults (degree 8192, primes 60+60 bits, scale ``2^40``, since 2026-12-07;
kits made before keep their 60+40+40+60 and still work):

- Secure aggregation only adds ciphertexts: no multiplication, so no rescaling and no
  prime beyond the one that holds the data. A ciphertext lives modulo the first prime
  (``q ~ 2^60``); SEAL keeps the last prime as its key-switching prime, unused here.
  One prime instead of three makes a ciphertext a third of the size and its
  encryption, loading and decryption about three times cheaper.
- Security: the whole coefficient modulus is 120 bits, far below the 218 bits the
  HomomorphicEncryption.org standard allows degree 8192 at 128-bit classical security
  (ternary secret, error sigma 3.2; :data:`MAX_COEFF_MODULUS_BITS`, SEAL's
  ``CoeffModulus::MaxBitCount``). A smaller modulus at a fixed degree is harder to
  attack, so the level is above 128 bits. SEAL checks the same table again whenever a
  context is loaded (:func:`crypto.ckks_context.seal_handles`, ``sec_level_type.tc128``).
- Room for the values: the data prime holds ``|sum| <= 2^17.5`` at scale ``2^40``
  (:func:`crypto.ckks_aggregation.max_abs_sum`), about 185,000, with a factor 2 margin;
  each node refuses to encrypt a value above that bound divided by the number of
  nodes that may be summed, and the decrypting node refuses a sum above it.
- Precision: the scale stays ``2^40`` (the decryption grid of
  :mod:`crypto.ckks_decryption_rounding` is unchanged). Nodes encrypt with the secret
  key (symmetric CKKS), whose fresh error is far smaller than public-key encryption's:
  the largest error of a decrypted sum of three adapter-sized updates is about
  ``2e-9`` (it was ``1.8e-8``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from embedding_core.errors import FedembedError

__all__ = [
    "MAX_COEFF_MODULUS_BITS",
    "CkksError",
    "CkksParameters",
    "num_chunks",
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


class CkksError(FedembedError):
    """CKKS parameters, a context or a ciphertext is invalid or does not fit."""


def _default_coeff_mod_bit_sizes() -> tuple[int, ...]:
    return (60, 60)


@dataclass(frozen=True)
class CkksParameters:
    """CKKS encryption parameters of a consortium.

    The defaults (degree 8192, moduli 60+60 bits, scale 2^40) give more than 128-bit
    security, 8,192 values per ciphertext (two per slot) and about 1e-8 absolute
    precision on sums; secure aggregation needs no multiplication depth (see the
    module docstring).

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
                expected="a sequence of integers such as (60, 60)",
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
        """CKKS slots per ciphertext (``poly_modulus_degree // 2``)."""
        return self.poly_modulus_degree // 2

    @property
    def values_per_ciphertext(self) -> int:
        """Real values per aggregation ciphertext: two per (complex) slot."""
        return self.poly_modulus_degree

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


def num_chunks(length: int, params: CkksParameters | None = None) -> int:
    """Number of aggregation ciphertexts a vector of ``length`` values becomes."""
    return math.ceil(length / (params or CkksParameters()).values_per_ciphertext)
