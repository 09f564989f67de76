"""Embedding-like point clouds for the alignment tests of attacks and audit."""

from __future__ import annotations

import numpy as np

DIM = 24


def mixture(n: int, seed: int, *, centres_seed: int = 7) -> np.ndarray:
    """Unit vectors from a skewed, anisotropic mixture (an embedding-like point cloud)."""
    centres = np.random.default_rng(centres_seed).standard_normal((12, DIM))
    centres *= np.linspace(3.0, 0.5, DIM)[None, :]
    rng = np.random.default_rng(seed)
    weights = np.linspace(2.0, 0.5, len(centres))
    labels = rng.choice(len(centres), size=n, p=weights / weights.sum())
    points = centres[labels] + 0.3 * rng.standard_normal((n, DIM))
    result: np.ndarray = points / np.linalg.norm(points, axis=1, keepdims=True)
    return result


def mean_cosine(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean cosine similarity of matching rows."""
    estimate = estimate / np.linalg.norm(estimate, axis=1, keepdims=True)
    truth = truth / np.linalg.norm(truth, axis=1, keepdims=True)
    return float((estimate * truth).sum(axis=1).mean())
