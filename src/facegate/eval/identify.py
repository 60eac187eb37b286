"""Open-set 1:N identification on identity folders (ISO/IEC 19795-1 style, rank 1).

- Gallery: the first image (by file name) of every folder with two or more images.
- Mated probes: the other images of those folders.
- Non-mated probes: the images of single-image folders (their people are not enrolled).

``rank1`` is the fraction of mated probes whose top gallery match is their own identity
(no threshold). ``fnir_at_fpir[x]``: the threshold ``t`` is the lowest at which the
fraction of non-mated probes whose top score is ``>= t`` is at most ``x``; FNIR is the
fraction of mated probes whose mate is not rank 1 with a score ``>= t``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.errors import ConfigError
from facegate.eval.calibrate import threshold_at_fmr
from facegate.eval.embeddings import embed_images, identity_of

FPIR_TARGETS: dict[str, float] = {"0.01": 0.01, "0.1": 0.1}


@dataclass(frozen=True)
class IdentificationSplit:
    """Relative image paths: one gallery image per enrolled identity, and the probes."""

    gallery: tuple[str, ...]
    mated: tuple[str, ...]
    mate_of: tuple[int, ...]  # for each mated probe, its identity's index in ``gallery``
    nonmated: tuple[str, ...]


def split_identities(paths: list[str]) -> IdentificationSplit:
    by_identity: dict[str, list[str]] = defaultdict(list)
    for rel in paths:
        by_identity[identity_of(rel)].append(rel)
    gallery: list[str] = []
    mated: list[str] = []
    mate_of: list[int] = []
    nonmated: list[str] = []
    for identity in sorted(by_identity):
        images = sorted(by_identity[identity], key=lambda p: (PurePosixPath(p).name, p))
        if len(images) == 1:
            nonmated.append(images[0])
            continue
        gallery.append(images[0])
        mated.extend(images[1:])
        mate_of.extend([len(gallery) - 1] * (len(images) - 1))
    return IdentificationSplit(tuple(gallery), tuple(mated), tuple(mate_of), tuple(nonmated))


def threshold_at_fpir(nonmated_top: NDArray[np.float64], fpir: float) -> float:
    """The lowest threshold at which at most ``floor(fpir * n)`` non-mated top scores are
    at or above it: the same rule as an FMR threshold, over non-mated probes (``-inf``
    entries, probes without a face, stay in ``n`` and never pass)."""
    if nonmated_top.size == 0:
        raise ConfigError("FPIR needs at least one non-mated probe")
    return threshold_at_fmr(nonmated_top, fpir)


def evaluate_identification(
    root: Path,
    model_id: str = "sface",
    *,
    settings: VisionSettings | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Open-set identification figures for ``model_id`` on the folders under ``root``."""
    started = time.perf_counter()
    embeddings = embed_images(
        root,
        model_id,
        settings=settings,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
    )
    split = split_identities(list(embeddings.paths))
    if not split.gallery:
        raise ConfigError(f"no folder under {root} has two or more images: nothing to enrol")
    if not split.nonmated:
        raise ConfigError(f"no folder under {root} has a single image: no non-mated probes")

    gallery_rows = embeddings.rows(split.gallery)
    mated_rows = embeddings.rows(split.mated)
    nonmated_rows = embeddings.rows(split.nonmated)
    mate_of = np.asarray(split.mate_of, dtype=np.intp)

    mated_scores = embeddings.score_matrix(mated_rows, gallery_rows)
    nonmated_scores = embeddings.score_matrix(nonmated_rows, gallery_rows)
    mated_best = np.argmax(mated_scores, axis=1)
    mated_top = mated_scores[np.arange(mated_rows.size), mated_best]
    nonmated_top = nonmated_scores.max(axis=1)  # -inf for a probe without a face

    # A probe without a face, or whose mate's gallery image has none, is never a hit.
    usable = np.isfinite(mated_top) & embeddings.found[gallery_rows][mate_of]
    rank1_hit = usable & (mated_best == mate_of)

    thresholds: dict[str, float] = {}
    fnir: dict[str, float] = {}
    fpir_reached: dict[str, float] = {}
    for key, target in FPIR_TARGETS.items():
        t = threshold_at_fpir(nonmated_top, target)
        thresholds[key] = t
        fnir[key] = float(np.mean(~(rank1_hit & (mated_top >= t))))
        fpir_reached[key] = float(np.mean(nonmated_top >= t))

    gallery_failed = [
        p for p, r in zip(split.gallery, gallery_rows, strict=True) if not embeddings.found[r]
    ]
    mated_failed = [
        p for p, r in zip(split.mated, mated_rows, strict=True) if not embeddings.found[r]
    ]
    nonmated_failed = [
        p for p, r in zip(split.nonmated, nonmated_rows, strict=True) if not embeddings.found[r]
    ]
    return {
        "model": embeddings.model_id,
        "gallery_size": len(split.gallery),
        "n_mated": len(split.mated),
        "n_nonmated": len(split.nonmated),
        "rank1": round(float(rank1_hit.mean()), 6),
        "fnir_at_fpir": {k: round(v, 6) for k, v in fnir.items()},
        "fpir_reached": {k: round(v, 6) for k, v in fpir_reached.items()},
        "threshold_at_fpir": {
            k: round(v, 6) if math.isfinite(v) else None for k, v in thresholds.items()
        },
        "failures": {
            "count": len(gallery_failed) + len(mated_failed) + len(nonmated_failed),
            "gallery": gallery_failed,
            "mated": mated_failed,
            "nonmated": nonmated_failed,
            "retried_and_found": int(embeddings.retried.sum()),
            "handling": (
                "no face at the default detector threshold: retried at threshold 0.3 on the "
                "image upscaled 2x; with still no face, a mated probe is a miss (counted in "
                "rank1 and FNIR), a non-mated probe is not a false positive (it stays in the "
                "FPIR denominator), and a gallery image leaves its identity unenrolled, so "
                "that identity's mated probes are misses"
            ),
        },
        "flip_average": embeddings.flip_average,
        "embeddings_from_cache": embeddings.from_cache,
        "notes": [
            "gallery: first image by file name of each folder with 2+ images; mated probes: "
            "the other images of those folders; non-mated probes: single-image folders",
            "FNIR at FPIR x: t is the lowest threshold with at most floor(x * n_nonmated) "
            "non-mated top scores >= t; FNIR = fraction of mated probes whose mate is not "
            "rank 1 with score >= t",
        ],
        "seconds": round(time.perf_counter() - started, 3),
    }
