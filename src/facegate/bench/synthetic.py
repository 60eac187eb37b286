"""Large galleries that look like real face embeddings, made from real ones.

Uniform random unit vectors are far easier (or harder) for an approximate index than real
face embeddings, which crowd into an anisotropic cone. So a synthetic gallery here keeps
the real geometry: from real embeddings (one model, labelled by identity) it fits
- the distribution of identity centres: a Gaussian (mean, full covariance) over the
  normalised mean embedding of each real identity;
- the spread of one person's photos around their centre: a Gaussian over the residuals
  of the identities that have several photos.
A synthetic person is a centre drawn from the first; each of their templates (and each
probe of them) adds a draw from the second and is normalised. ``fidelity`` compares the
genuine/impostor similarity distributions of the synthetic set with the real one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facegate.types import FloatArray


def _normalise(x: NDArray[Any]) -> FloatArray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class FaceSpace:
    """Gaussian models of identity centres and of photo-to-photo variation."""

    centre_mean: FloatArray
    centre_chol: FloatArray  # Cholesky factor of the centres' covariance
    within_chol: FloatArray  # Cholesky factor of the within-identity covariance
    dim: int
    # Photos of one person vary more in some shots (pose, light) than in others: each
    # photo's variation is scaled by a log-normal factor of this spread.
    shot_spread: float = 0.35  # matched to real LFW genuine scores (see fidelity)

    @classmethod
    def fit(cls, vectors: FloatArray, identities: Sequence[str]) -> FaceSpace:
        groups: dict[str, list[int]] = defaultdict(list)
        for row, who in enumerate(identities):
            groups[who].append(row)
        centres = np.stack([_normalise(vectors[rows].mean(axis=0)) for rows in groups.values()])
        # Residuals around a mean of n photos understate the spread by sqrt((n-1)/n).
        residuals = np.concatenate(
            [
                (vectors[rows] - vectors[rows].mean(axis=0)) * np.sqrt(len(rows) / (len(rows) - 1))
                for rows in groups.values()
                if len(rows) > 1
            ]
        )
        dim = vectors.shape[1]
        ridge = np.eye(dim) * 1e-6  # keeps the factorisation stable
        return cls(
            centre_mean=centres.mean(axis=0).astype(np.float32),
            centre_chol=np.linalg.cholesky(np.cov(centres, rowvar=False) + ridge).astype(
                np.float32
            ),
            within_chol=np.linalg.cholesky(np.cov(residuals, rowvar=False) + ridge).astype(
                np.float32
            ),
            dim=dim,
        )

    def centres(self, n: int, rng: np.random.Generator) -> FloatArray:
        draws = rng.standard_normal((n, self.dim)).astype(np.float32) @ self.centre_chol.T
        return _normalise(self.centre_mean + draws)

    def photos(self, centres: FloatArray, rng: np.random.Generator) -> FloatArray:
        """One photo-like embedding per row of ``centres``."""
        noise = rng.standard_normal(centres.shape).astype(np.float32) @ self.within_chol.T
        scale = rng.lognormal(0.0, self.shot_spread, (len(centres), 1)).astype(np.float32)
        return _normalise(centres + noise * scale)


def fidelity(
    real: FloatArray, identities: Sequence[str], space: FaceSpace, seed: int = 0
) -> dict[str, float]:
    """Mean/std of genuine and impostor cosine scores, real versus synthetic."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for row, who in enumerate(identities):
        groups[who].append(row)
    genuine = [
        float(real[a] @ real[b])
        for rows in groups.values()
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
    ]
    picks = rng.integers(0, len(real), (20_000, 2))
    impostor = [float(real[a] @ real[b]) for a, b in picks if identities[a] != identities[b]]
    centres = space.centres(5_000, rng)
    first, second = space.photos(centres, rng), space.photos(centres, rng)
    synthetic_genuine = np.sum(first * second, axis=1)
    synthetic_impostor = np.sum(first * np.roll(second, 1, axis=0), axis=1)
    return {
        "real_genuine_mean": float(np.mean(genuine)),
        "real_genuine_std": float(np.std(genuine)),
        "real_impostor_mean": float(np.mean(impostor)),
        "real_impostor_std": float(np.std(impostor)),
        "synthetic_genuine_mean": float(synthetic_genuine.mean()),
        "synthetic_genuine_std": float(synthetic_genuine.std()),
        "synthetic_impostor_mean": float(synthetic_impostor.mean()),
        "synthetic_impostor_std": float(synthetic_impostor.std()),
    }
