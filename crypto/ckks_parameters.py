"""CKKS encryption parameters of a consortium, and their 128-bit-security checks.

:class:`CkksParameters` (ring degree, coefficient-modulus primes, encoding scale) is
validated on construction against :data:`MAX_COEFF_MODULUS_BITS` and round-trips through
a JSON-ready dict for kit manifests. :class:`CkksError` is the error of every CKKS
helper. Pure Python: no TenSEAL or Flower import.
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


def num_chunks(length: int, params: CkksParameters | None = None) -> int:
    """Number of ciphertexts a vector of ``length`` values becomes."""
    return math.ceil(length / (params or CkksParameters()).slot_count)
