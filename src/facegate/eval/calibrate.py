"""Calibrate score statistics and operating points on every pair of a labelled photo set.

Every image under the root is embedded with SFace and dlib (one face per image, the
central one). Over all pairs ``i < j`` of the images where both models found a face:
genuine pairs share an identity (folder), impostor pairs do not (about 18.7 million on
LFW, which FMR 1e-4 needs).

Per model: impostor mean and standard deviation, genuine mean, and thresholds at FMR
1e-2, 1e-3, 1e-4 with the TAR at each. A threshold is the lowest value at which at most
``floor(fmr * n_impostor)`` impostor scores are at or above it (accept means
``score >= threshold``, as :func:`facegate.policy.thresholds.decide` does).

Fusion: each member's cosine is z-normalised by its impostor mean and std, and the fused
score is ``w_s * z_s + w_d * z_d`` with ``w_s + w_d = 1``; the weights are chosen on a grid
(step 0.05) to maximise TAR at FMR 1e-3 over these all-pairs sets (ties: higher TAR at
1e-4), which keeps fusion sound for open-set 1:N, where dlib's impostor scores crowd its
genuine ones.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import facegate
import facegate.vision
from facegate.config import VisionSettings
from facegate.errors import ConfigError
from facegate.eval.embeddings import (
    FUSED_MEMBERS,
    content_digest,
    embed_images,
    identity_of,
)

logger = logging.getLogger(__name__)

FMR_TARGETS: dict[str, float] = {"1e-2": 1e-2, "1e-3": 1e-3, "1e-4": 1e-4}
SELECTION_FMR = "1e-3"
TIEBREAK_FMR = "1e-4"
WEIGHT_STEP = 0.05


def default_output() -> Path:
    """``calibration.json`` inside the installed ``facegate.vision`` package."""
    return Path(facegate.vision.__file__).parent / "data" / "calibration.json"


def threshold_at_fmr(impostor: NDArray[Any], fmr: float) -> float:
    """The lowest threshold with at most ``floor(fmr * n)`` impostor scores ``>=`` it:
    just above the ``(floor(fmr * n) + 1)``-th highest impostor score."""
    n = impostor.size
    if n == 0:
        raise ConfigError("no impostor pairs to calibrate on")
    allowed = math.floor(fmr * n + 1e-9)
    if allowed >= n:
        return -math.inf
    kth = np.partition(impostor, n - 1 - allowed)[n - 1 - allowed]
    return float(np.nextafter(kth, np.inf))


def operating_points(
    genuine: NDArray[Any], impostor: NDArray[Any]
) -> tuple[dict[str, float], dict[str, float]]:
    """(thresholds, TARs) at each FMR in ``FMR_TARGETS``."""
    thresholds = {k: threshold_at_fmr(impostor, fmr) for k, fmr in FMR_TARGETS.items()}
    tars = {k: float(np.mean(genuine >= t)) for k, t in thresholds.items()}
    return thresholds, tars


@dataclass
class Calibration:
    """The calibration file's content, and how the fusion weights were chosen."""

    data: dict[str, Any]
    fusion_grid: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _pair_scores(
    vectors: NDArray[np.float32], upper: NDArray[np.bool_], same: NDArray[np.bool_]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """(genuine, impostor) cosines over the pairs i < j, in row-major order."""
    matrix = vectors @ vectors.T
    genuine = matrix[upper & same]
    impostor = matrix[upper & ~same]
    return genuine.astype(np.float32), impostor.astype(np.float32)


def calibrate(
    root: Path,
    *,
    root_label: str | None = None,
    settings: VisionSettings | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> Calibration:
    """Compute the calibration for sface, dlib and their fusion on the images under ``root``.

    ``root_label`` is how the root is named in ``generated_by`` (as the user typed it).
    """
    started = time.perf_counter()
    root = Path(root)
    settings = settings or VisionSettings()
    sets = {
        m: embed_images(
            root, m, settings=settings, cache_dir=cache_dir, use_cache=use_cache, progress=progress
        )
        for m in FUSED_MEMBERS
    }
    paths = sets["sface"].paths
    ok = np.logical_and.reduce([s.found for s in sets.values()])
    failures = int((~ok).sum())
    if failures:
        logger.warning("%d images without a face are left out of calibration", failures)
    labels = np.array([identity_of(p) for p, keep in zip(paths, ok, strict=True) if keep])
    _, label_ids = np.unique(labels, return_inverse=True)
    n = int(label_ids.size)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    same = label_ids[:, None] == label_ids[None, :]

    models: dict[str, Any] = {}
    z_genuine: dict[str, NDArray[np.float32]] = {}
    z_impostor: dict[str, NDArray[np.float32]] = {}
    n_genuine = n_impostor = 0
    for model_id, emb in sets.items():
        genuine, impostor = _pair_scores(emb.vectors[ok], upper, same)
        n_genuine, n_impostor = int(genuine.size), int(impostor.size)
        if n_genuine == 0:
            raise ConfigError(f"no identity under {root} has two images with a face")
        mean = float(np.mean(impostor, dtype=np.float64))
        std = float(np.std(impostor, dtype=np.float64))
        thresholds, tars = operating_points(genuine, impostor)
        models[model_id] = {
            "impostor_mean": mean,
            "impostor_std": std,
            "genuine_mean": float(np.mean(genuine, dtype=np.float64)),
            "thresholds": thresholds,
            "tar": tars,
        }
        z_genuine[model_id] = ((genuine - mean) / std).astype(np.float32)
        z_impostor[model_id] = ((impostor - mean) / std).astype(np.float32)
        logger.info("%s: TAR %s at FMR 1e-3", model_id, tars["1e-3"])
    del upper, same

    grid: list[dict[str, float]] = []
    best: tuple[float, float] | None = None
    best_weight = 0.5
    for step in range(round(1 / WEIGHT_STEP) + 1):
        w_s = round(step * WEIGHT_STEP, 10)
        w_d = round(1.0 - w_s, 10)
        impostor = w_s * z_impostor["sface"] + w_d * z_impostor["dlib"]
        genuine = w_s * z_genuine["sface"] + w_d * z_genuine["dlib"]
        tars = {}
        for key in (SELECTION_FMR, TIEBREAK_FMR):
            tars[key] = float(np.mean(genuine >= threshold_at_fmr(impostor, FMR_TARGETS[key])))
        grid.append(
            {"sface_weight": w_s, "dlib_weight": w_d, **{f"tar_{k}": v for k, v in tars.items()}}
        )
        rank = (tars[SELECTION_FMR], tars[TIEBREAK_FMR])
        if best is None or rank > best:
            best, best_weight = rank, w_s
    w_s, w_d = best_weight, round(1.0 - best_weight, 10)
    fused_genuine = w_s * z_genuine["sface"] + w_d * z_genuine["dlib"]
    fused_impostor = w_s * z_impostor["sface"] + w_d * z_impostor["dlib"]
    thresholds, tars = operating_points(fused_genuine, fused_impostor)
    models["fused"] = {
        "fusion": {
            m: {
                "impostor_mean": models[m]["impostor_mean"],
                "impostor_std": models[m]["impostor_std"],
                "weight": w,
            }
            for m, w in (("sface", w_s), ("dlib", w_d))
        },
        "thresholds": thresholds,
        "tar": tars,
    }
    logger.info("fusion weights: sface %.2f, dlib %.2f", w_s, w_d)

    label = root_label if root_label is not None else str(root)
    data = {
        "generated_by": f"facegate eval calibrate --root {label}",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "facegate_version": facegate.__version__,
        "dataset": {
            "n_images": len(paths),
            "n_identities": len({identity_of(p) for p in paths}),
            "n_genuine": n_genuine,
            "n_impostor": n_impostor,
            "failures": failures,
            "content_digest": content_digest(root, paths),
        },
        "models": models,
    }
    return Calibration(data=data, fusion_grid=grid, seconds=time.perf_counter() - started)


def write_calibration(data: dict[str, Any], out: Path) -> Path:
    """Write ``data`` as JSON to ``out`` atomically; reloads the shipped one if it is that."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o644)  # shipped package data: readable by all (mkstemp makes it 0600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if out.resolve() == default_output().resolve():
        from facegate.vision.calibration import load_calibration
        from facegate.vision.models import get_embedder

        load_calibration.cache_clear()
        get_embedder.cache_clear()  # a fused embedder holds the old fusion statistics
    return out
