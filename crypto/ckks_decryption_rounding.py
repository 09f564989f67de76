"""Rounding a CKKS decryption before it leaves the node that holds the secret key.

A CKKS decryption returns ``m + e``: the message plus an error ``e`` that depends on the
secret key. Li and Micciancio ("On the Security of Homomorphic Encryption on
Approximate Numbers", EUROCRYPT 2021) recover the secret key from a few such outputs
and their ciphertexts, so a raw decryption must never be handed to another party.

We round every decrypted value to a grid of step ``2^(GRID_BITS_ABOVE_SCALE - scale_bits)``
(``2^-16`` at the consortium's default scale ``2^40``). Why this step:

- The decryption error of a sum is far below it: measured on this machine at degree
  8192 and scale ``2^40``, the largest error of a decrypted sum of five fresh
  public-key ciphertexts (moduli 60+40+40+60, before 2026-12-07) was ``2.2e-8`` (about
  ``2^-25.4``), and of three fresh secret-key ciphertexts, two values a slot (moduli
  60+60, :mod:`crypto.ckks_aggregation` since then) about ``1.7e-9`` (``2^-29``),
  independent of the values' magnitude. The error grows like the square root of the
  number of summands and of the ring degree, so even a sum of 100 public-key updates at
  degree 32768 stays below ``2^-22``: the grid is ``2^6`` or more above it, and rounding
  removes ``e`` from every value not within ``|e|`` of a grid midpoint.
- Those few values near a midpoint still reveal the sign of ``e`` there. Exploiting that
  needs chosen ciphertexts; the decrypting node only decrypts a sum it recomputed itself
  from contributions signed by authorised nodes, so a deviating coordinator chooses
  none (a member colluding with the coordinator is out of scope).
- The step is negligible for the model: the coordinator divides the sum by the total
  weight, so the mean moves by at most ``2^-17 / weight`` (under ``8e-6``) per value,
  far below the DP noise on the mean and the updates a round applies.

Noise flooding (adding noise far above ``e``, as OpenFHE does for threshold CKKS) is the
provably secure alternative; it costs accuracy of the same order as the grid here and
would add a second noise source to the distributed-DP accounting, so we round.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["GRID_BITS_ABOVE_SCALE", "decryption_grid", "round_decryption"]

GRID_BITS_ABOVE_SCALE = 24
"""log2 of the grid step times the encoding scale: ``2^-16`` at scale ``2^40``."""


def decryption_grid(scale_bits: int) -> float:
    """The rounding step for a context whose encoding scale is ``2^scale_bits``."""
    if isinstance(scale_bits, bool) or not isinstance(scale_bits, int) or scale_bits <= 0:
        raise ValueError(f"scale_bits must be a positive integer, got {scale_bits!r}")
    return float(2.0 ** (GRID_BITS_ABOVE_SCALE - scale_bits))


def round_decryption(values: NDArray[np.floating[Any]], *, scale_bits: int) -> NDArray[np.float64]:
    """``values`` rounded to :func:`decryption_grid` (exact multiples of a power of two)."""
    step = decryption_grid(scale_bits)
    return np.asarray(np.round(np.asarray(values, dtype=np.float64) / step) * step)
