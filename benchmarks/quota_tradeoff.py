"""The false-deny / false-grant trade-off of anonymous quotas, measured on LFW.

An anonymous quota remembers the face of each granted claim for one window and denies a
new claim whose face scores at or above the operating point's threshold against a
remembered one. Two errors:

- false deny (a false match): a stranger scores at or above the threshold against
  someone who already claimed, and is turned away;
- false grant (a false non-match): the same person's new photo scores below the threshold
  against their own earlier claim, and is served again.

For each SFace operating point (FMR 1e-2, 1e-3, 1e-4, thresholds from
``src/facegate/vision/data/calibration.json``) this measures, with counts and 95 % Wilson
intervals:

1. ``pairs_csv``: the 2,979 pairs of ``pairs.csv`` (different-person pairs at or above
   the threshold = false deny; same-person pairs below = false grant);
2. ``all_pairs``: every pair among the 6,124 images (59,086 same-person pairs, 18.7 M
   different-person pairs);
3. ``held_out``: thresholds re-calibrated on the pairs of half the identities and applied
   to the other half (2 folds, identity-disjoint): what the in-sample figures hide;
4. ``memory``: a stranger faces every remembered face, not one: with N faces remembered,
   the share of strangers denied (N random identities remembered, one photo each; one
   photo of every other identity as a probe; repeated), against the prediction
   ``1 - (1 - p)^N`` from the all-pairs false-deny rate ``p``.

The thresholds were calibrated on these same images, so (1) and (2) are in-sample and
optimistic; (3) is the honest figure for photos the calibration never saw, and LFW
(press photos, often of celebrities the models were trained on) is itself kinder than a
kiosk camera.

Usage: python benchmarks/quota_tradeoff.py [--root ../shared/data/faces]
           [--out benchmarks/results/quota_tradeoff.json] [--trials 40] [--seed 0]
Embeddings come from the evaluation cache (``~/.cache/facegate/eval``) when present.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import facegate
from facegate.eval.calibrate import threshold_at_fmr
from facegate.eval.embeddings import embed_images, identity_of
from facegate.eval.pairs import read_pairs
from facegate.policy.thresholds import operating_point

MODEL = "sface"
FMRS = (1e-2, 1e-3, 1e-4)
MEMORY_SIZES = (1, 10, 100, 1000)
Z95 = 1.959963984540054


def wilson(count: int, n: int) -> list[float]:
    """The 95 % Wilson score interval of a proportion ``count / n``."""
    if n == 0:
        return [0.0, 1.0]
    p = count / n
    denominator = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def rate(count: int, n: int) -> dict[str, Any]:
    return {
        "count": int(count),
        "n": int(n),
        "rate": count / n if n else None,
        "ci95": wilson(count, n),
    }


def errors_at(genuine: NDArray[Any], impostor: NDArray[Any], threshold: float) -> dict[str, Any]:
    return {
        "false_deny": rate(int((impostor >= threshold).sum()), impostor.size),
        "false_grant": rate(int((genuine < threshold).sum()), genuine.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/faces"))
    parser.add_argument("--pairs", type=Path, help="default: <root>/pairs.csv")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quota_tradeoff.json"))
    parser.add_argument("--trials", type=int, default=40, help="memory simulations per size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    embeddings = embed_images(args.root, MODEL, progress=True)
    found = embeddings.found
    pairs = read_pairs(args.pairs or args.root / "pairs.csv")
    pair_scores = embeddings.pair_scores(embeddings.rows(pairs.img1), embeddings.rows(pairs.img2))
    pair_genuine, pair_impostor = pair_scores[pairs.same], pair_scores[~pairs.same]

    # Every pair i < j among the images with a face (none lacks one on LFW).
    vectors = embeddings.vectors[found]
    labels = np.array([identity_of(p) for p, ok in zip(embeddings.paths, found, strict=True) if ok])
    _, label_ids = np.unique(labels, return_inverse=True)
    matrix = vectors @ vectors.T
    upper = np.triu(np.ones(matrix.shape, dtype=bool), k=1)
    same = label_ids[:, None] == label_ids[None, :]
    all_genuine = matrix[upper & same]
    all_impostor = matrix[upper & ~same]

    # Two identity-disjoint folds: calibrate on one, measure on the other.
    identities = np.unique(label_ids)
    fold_of_identity = rng.permutation(identities.size) % 2
    fold = fold_of_identity[label_ids]
    in_fold = [np.ix_(fold == f, fold == f) for f in (0, 1)]

    def fold_scores(f: int) -> tuple[NDArray[Any], NDArray[Any]]:
        block, up, sm = matrix[in_fold[f]], upper[in_fold[f]], same[in_fold[f]]
        return block[up & sm], block[up & ~sm]

    folds = [fold_scores(f) for f in (0, 1)]

    # One image per identity, at random, for the memory simulation.
    members = [np.flatnonzero(label_ids == i) for i in identities]

    results: list[dict[str, Any]] = []
    for fmr in FMRS:
        point = operating_point(MODEL, fmr)
        threshold = point.threshold
        held: dict[str, list[int]] = {"false_deny": [0, 0], "false_grant": [0, 0]}
        fold_thresholds: list[float] = []
        for f in (0, 1):
            calibrated = threshold_at_fmr(folds[f][1], fmr)
            genuine, impostor = folds[1 - f]
            fold_thresholds.append(calibrated)
            held["false_deny"][0] += int((impostor >= calibrated).sum())
            held["false_deny"][1] += impostor.size
            held["false_grant"][0] += int((genuine < calibrated).sum())
            held["false_grant"][1] += genuine.size
        all_errors = errors_at(all_genuine, all_impostor, threshold)
        p = all_errors["false_deny"]["rate"]
        memory: list[dict[str, Any]] = []
        for size in MEMORY_SIZES:
            denied = probes = 0
            for _ in range(args.trials):
                remembered = rng.choice(identities.size, size, replace=False)
                others = np.setdiff1d(np.arange(identities.size), remembered)
                memory_rows = np.array([rng.choice(members[i]) for i in remembered])
                probe_rows = np.array([rng.choice(members[i]) for i in others])
                best = matrix[np.ix_(probe_rows, memory_rows)].max(axis=1)
                denied += int((best >= threshold).sum())
                probes += probe_rows.size
            memory.append(
                {
                    "faces_remembered": size,
                    "strangers_denied": rate(denied, probes),
                    "predicted": 1 - (1 - p) ** size,
                    "trials": args.trials,
                }
            )
        results.append(
            {
                "fmr": fmr,
                "threshold": threshold,
                "pairs_csv": errors_at(pair_genuine, pair_impostor, threshold),
                "all_pairs": all_errors,
                "held_out": {
                    "false_deny": rate(*held["false_deny"]),
                    "false_grant": rate(*held["false_grant"]),
                    "fold_thresholds": fold_thresholds,
                },
                "memory": memory,
            }
        )

    report = {
        "generated_by": "python benchmarks/quota_tradeoff.py",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "facegate_version": facegate.__version__,
        "python": platform.python_version(),
        "model": MODEL,
        "dataset": {
            "root": str(args.root),
            "images": int(found.size),
            "images_without_face": int((~found).sum()),
            "identities": int(identities.size),
            "pairs_csv": {"same": int(pairs.same.sum()), "different": int((~pairs.same).sum())},
            "all_pairs": {"same": int(all_genuine.size), "different": int(all_impostor.size)},
        },
        "definitions": {
            "false_deny": "a different person scores >= threshold: a stranger is taken for "
            "someone who already claimed (false match)",
            "false_grant": "the same person scores < threshold: they are served again "
            "(false non-match)",
            "ci95": "Wilson score interval; the memory trials reuse images, so their "
            "intervals are narrower than the truth",
        },
        "caveat": "thresholds were calibrated on every pair of these same images: pairs_csv "
        "and all_pairs are in-sample (optimistic); held_out re-calibrates on half the "
        "identities and measures on the other half",
        "operating_points": results,
        "seconds": round(time.perf_counter() - started, 1),
        "embeddings_from_cache": embeddings.from_cache,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        print(
            f"FMR {r['fmr']:g} (threshold {r['threshold']:.4f}): "
            f"pairs.csv false deny {r['pairs_csv']['false_deny']['count']}/"
            f"{r['pairs_csv']['false_deny']['n']}, false grant "
            f"{r['pairs_csv']['false_grant']['count']}/{r['pairs_csv']['false_grant']['n']}; "
            f"all pairs false deny {r['all_pairs']['false_deny']['rate']:.2e}, false grant "
            f"{r['all_pairs']['false_grant']['rate']:.4f}; held out false deny "
            f"{r['held_out']['false_deny']['rate']:.2e}, false grant "
            f"{r['held_out']['false_grant']['rate']:.4f}; strangers denied with "
            + ", ".join(
                f"{m['faces_remembered']} faces {m['strangers_denied']['rate']:.4f}"
                for m in r["memory"]
            )
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
