"""1:1 verification accuracy on a pairs file (LFW protocol, folds for cross-validation).

The pairs file is a CSV with the header ``img1,img2,same,fold``: paths relative to the
image root, ``same`` 1 or 0, and ``fold`` the cross-validation fold of the row.

- ``accuracy``: for each fold, the threshold that maximises accuracy on the *other* folds is
  applied to it; the figure is the mean over folds, ``accuracy_std`` the population standard
  deviation over folds (ddof=0).
- ``auc``, ``eer`` and ``tar_at_far`` come from the ROC over all pairs (a pair is accepted
  when its score is at or above the threshold).
- A pair with an image where no face was found scores the lowest possible score: below
  every real score, so it is a non-match at every threshold (a miss for a genuine pair).
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.errors import ConfigError
from facegate.eval.embeddings import embed_images

logger = logging.getLogger(__name__)

FAR_TARGETS: dict[str, float] = {"1e-2": 1e-2, "1e-3": 1e-3}
PAIRS_COLUMNS = ("img1", "img2", "same", "fold")

FloatVector = NDArray[np.float64]
BoolVector = NDArray[np.bool_]


# --- input --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairList:
    img1: tuple[str, ...]
    img2: tuple[str, ...]
    same: BoolVector
    fold: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.img1)


def read_pairs(path: Path) -> PairList:
    """Read ``img1,img2,same,fold`` rows; raises ConfigError naming the bad line."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # tolerate a spreadsheet's BOM
    except OSError as exc:
        raise ConfigError(f"cannot read the pairs file {path}: {exc}") from exc
    img1: list[str] = []
    img2: list[str] = []
    same: list[bool] = []
    fold: list[int] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PAIRS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: expected the columns {','.join(PAIRS_COLUMNS)}, "
                f"missing {','.join(missing)}"
            )
        for line, row in enumerate(reader, start=2):
            try:
                flag = int(row["same"])
                fold_id = int(row["fold"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}:{line}: same and fold must be integers") from exc
            if flag not in (0, 1):
                raise ConfigError(f"{path}:{line}: same must be 0 or 1, got {flag}")
            if not row["img1"] or not row["img2"]:
                raise ConfigError(f"{path}:{line}: img1 and img2 must be image paths")
            img1.append(row["img1"])
            img2.append(row["img2"])
            same.append(bool(flag))
            fold.append(fold_id)
    if not img1:
        raise ConfigError(f"{path}: no pairs")
    return PairList(
        tuple(img1), tuple(img2), np.array(same, dtype=bool), np.array(fold, dtype=np.int64)
    )


# --- thresholds and metrics ---------------------------------------------------------------
def best_threshold(scores: FloatVector, same: BoolVector) -> float:
    """The threshold (accept at or above) that maximises accuracy on ``scores``.

    Candidates are midpoints between consecutive distinct scores, plus one below the lowest
    and one above the highest. When several candidates tie, the middle one (lower median of
    the tied candidates, in score order) is taken.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if scores.shape != same.shape or scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"scores and same must be equal-length 1-D arrays, got {scores.shape}, {same.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    y = same[order]
    distinct = np.flatnonzero(np.diff(s) > 0) + 1  # boundaries between different scores
    cuts = np.concatenate([[0], distinct, [s.size]])  # accept the pairs from index cut on
    negatives_below = np.concatenate([[0], np.cumsum(~y)])[cuts]
    positives_above = y.sum() - np.concatenate([[0], np.cumsum(y)])[cuts]
    correct = negatives_below + positives_above
    best = np.flatnonzero(correct == correct.max())
    cut = int(cuts[best[(best.size - 1) // 2]])
    if cut == 0:
        return float(s[0] - 1.0)
    if cut == s.size:
        return float(s[-1] + 1.0)
    return float((s[cut - 1] + s[cut]) / 2)


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[int, ...]
    accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def accuracy_std(self) -> float:
        return float(np.std(self.accuracies))


def cross_validated_accuracy(
    scores: FloatVector, same: BoolVector, folds: NDArray[np.int64]
) -> CrossValidation:
    """Per fold: the best threshold on the other folds, applied to this fold."""
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    folds = np.asarray(folds)
    fold_ids = sorted({int(f) for f in folds})
    if len(fold_ids) < 2:
        raise ConfigError(f"cross-validation needs at least 2 folds, got {fold_ids}")
    accuracies: list[float] = []
    thresholds: list[float] = []
    for fold in fold_ids:
        test = folds == fold
        threshold = best_threshold(scores[~test], same[~test])
        accuracies.append(float(np.mean((scores[test] >= threshold) == same[test])))
        thresholds.append(threshold)
    return CrossValidation(tuple(fold_ids), tuple(accuracies), tuple(thresholds))


@dataclass(frozen=True)
class Roc:
    """Points of the ROC, thresholds decreasing: accept when ``score >= thresholds[k]``.

    The first point is ``(far, tar) = (0, 0)`` at threshold ``+inf``.
    """

    far: FloatVector
    tar: FloatVector
    thresholds: FloatVector
    n_genuine: int
    n_impostor: int


def roc_curve(scores: FloatVector, same: BoolVector) -> Roc:
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    n_genuine = int(same.sum())
    n_impostor = int(same.size - n_genuine)
    if n_genuine == 0 or n_impostor == 0:
        raise ConfigError("the ROC needs both genuine and impostor pairs")
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    y = same[order]
    last = np.concatenate([np.flatnonzero(np.diff(s) != 0), [s.size - 1]])  # end of each tie group
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    return Roc(
        far=np.concatenate([[0.0], fp / n_impostor]),
        tar=np.concatenate([[0.0], tp / n_genuine]),
        thresholds=np.concatenate([[np.inf], s[last]]),
        n_genuine=n_genuine,
        n_impostor=n_impostor,
    )


def roc_auc(roc: Roc) -> float:
    return float(np.sum(np.diff(roc.far) * (roc.tar[1:] + roc.tar[:-1]) / 2))


def equal_error_rate(roc: Roc) -> float:
    """Where FAR equals FRR (= 1 - TAR), linearly interpolated between ROC points."""
    frr = 1.0 - roc.tar
    gap = roc.far - frr  # increases from -1 (first point) to 1 (last point)
    k = int(np.argmax(gap >= 0))
    if k == 0:
        return float(roc.far[0])
    g0, g1 = gap[k - 1], gap[k]
    x = g0 / (g0 - g1) if g1 != g0 else 0.0
    return float(roc.far[k - 1] + x * (roc.far[k] - roc.far[k - 1]))


def tar_at_far(roc: Roc, target: float) -> tuple[float, float, float]:
    """(TAR, threshold, FAR reached): the largest TAR with FAR <= ``target``."""
    ok = np.flatnonzero(roc.far <= target)
    k = int(ok[np.argmax(roc.tar[ok])])
    return float(roc.tar[k]), float(roc.thresholds[k]), float(roc.far[k])


# --- the evaluation -----------------------------------------------------------------------
def evaluate_pairs(
    pairs_csv: Path,
    root: Path,
    model_id: str = "sface",
    *,
    settings: VisionSettings | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
    plot_dir: Path | None = None,
) -> dict[str, Any]:
    """Verification figures for ``model_id`` on the pairs in ``pairs_csv`` (a JSON-able dict).

    Every image under ``root`` is embedded (once, cached), so the same cache serves
    ``identify`` and ``calibrate``.
    """
    started = time.perf_counter()
    pairs = read_pairs(pairs_csv)
    embeddings = embed_images(
        root,
        model_id,
        settings=settings,
        cache_dir=cache_dir,
        use_cache=use_cache,
        progress=progress,
    )
    rows1 = embeddings.rows(pairs.img1)
    rows2 = embeddings.rows(pairs.img2)
    scores = embeddings.pair_scores(rows1, rows2)

    failed = ~np.isfinite(scores)
    finite = scores[~failed]
    floor = float(finite.min() - 1.0) if finite.size else -1.0
    scores = np.where(failed, floor, scores)
    used = set(pairs.img1) | set(pairs.img2)
    failed_images = sorted(p for p in embeddings.failures if p in used)

    cv = cross_validated_accuracy(scores, pairs.same, pairs.fold)
    roc = roc_curve(scores, pairs.same)
    tars = {key: tar_at_far(roc, far) for key, far in FAR_TARGETS.items()}
    result: dict[str, Any] = {
        "model": embeddings.model_id,
        "n_pairs": len(pairs),
        "n_genuine": roc.n_genuine,
        "n_impostor": roc.n_impostor,
        "accuracy": round(cv.accuracy, 6),
        "accuracy_std": round(cv.accuracy_std, 6),
        "auc": round(roc_auc(roc), 6),
        "eer": round(equal_error_rate(roc), 6),
        "tar_at_far": {key: round(t[0], 6) for key, t in tars.items()},
        "far_reached": {key: round(t[2], 6) for key, t in tars.items()},
        # No threshold reaches a FAR when an impostor pair scores highest: null, not Infinity.
        "threshold_at_far": {
            key: round(t[1], 6) if math.isfinite(t[1]) else None for key, t in tars.items()
        },
        "threshold_mean": round(float(np.mean(cv.thresholds)), 6),
        "fold_accuracies": {
            str(f): round(a, 6) for f, a in zip(cv.folds, cv.accuracies, strict=True)
        },
        "fold_thresholds": {
            str(f): round(t, 6) for f, t in zip(cv.folds, cv.thresholds, strict=True)
        },
        "failures": {
            "count": len(failed_images),
            "images": failed_images,
            "pairs_affected": int(failed.sum()),
            "retried_and_found": int(
                embeddings.retried[np.unique(np.concatenate([rows1, rows2]))].sum()
            ),
            "handling": (
                "no face at the default detector threshold: retried at threshold 0.3 on the "
                "image upscaled 2x; an image with still no face makes each of its pairs score "
                "the lowest possible score (below every real score), i.e. a non-match at every "
                "threshold: a miss for a same pair, a correct rejection for a different pair; "
                "such pairs stay in every figure"
            ),
        },
        "flip_average": embeddings.flip_average,
        "embeddings_from_cache": embeddings.from_cache,
        "notes": [
            "accuracy: mean over folds of the accuracy at the threshold that maximises "
            "accuracy on the other folds; accuracy_std: population std over folds (ddof=0)",
            "auc, eer, tar_at_far: over all pairs, a pair accepted when score >= threshold",
            f"tar_at_far is the largest TAR with FAR <= target; with {roc.n_impostor} impostor "
            f"pairs, FAR 1e-3 allows {math.floor(roc.n_impostor * 1e-3)} false accept(s), so it "
            "is coarse (one impostor pair moves it); see `facegate eval calibrate` for rates "
            "measured over millions of impostor pairs",
        ],
    }
    if plot_dir is not None:
        result["plots"] = [str(p) for p in write_plots(roc, Path(plot_dir), embeddings.model_id)]
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def write_plots(roc: Roc, out_dir: Path, model_id: str) -> list[Path]:
    """``roc.png`` (TAR against FAR, log FAR) and ``det.png`` (FRR against FAR, log-log).

    Drawn on matplotlib ``Figure`` objects (Agg canvas), leaving pyplot's global state alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    far = roc.far[1:]
    tar = roc.tar[1:]
    floor = 0.5 / roc.n_impostor  # where FAR = 0 is drawn on a log axis
    written = []

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(np.maximum(far, floor), tar, drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_xlabel(f"false accept rate (FAR; FAR 0 drawn at {floor:.1e})")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(f"ROC, {model_id}: {roc.n_genuine} genuine / {roc.n_impostor} impostor pairs")
    ax.grid(True, which="both", alpha=0.3)
    path = out_dir / "roc.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    written.append(path)

    fig = Figure(figsize=(6, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    frr = 1.0 - tar
    keep = frr > 0
    ax.plot(np.maximum(far[keep], floor), frr[keep], drawstyle="steps-post")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"false accept rate (FAR; FAR 0 drawn at {floor:.1e})")
    ax.set_ylabel("false reject rate (FRR)")
    ax.set_title(f"DET, {model_id}")
    ax.grid(True, which="both", alpha=0.3)
    path = out_dir / "det.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    written.append(path)
    return written
