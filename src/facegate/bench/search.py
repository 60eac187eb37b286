"""Vector search: facegate's index against exact FAISS (the peer), in the same run.

``run_search_bench`` searches galleries of 100k and 1M templates (quick: 20k) one query at
a time on one thread, as the service does, with:
- exact FAISS (``IndexFlatIP``): the peer, and the ground truth;
- facegate's :class:`~facegate.gallery.index.VectorIndex` in its two-stage mode (4-bit PQ
  fast scan, then exact re-scoring of the ``RERANK`` x k best), forced on at every size
  here (``approximate_above=1``) so that the figure is the approximate index's;
- optionally (``alternatives_max``), HNSW and IVF, measured before the two-stage index was
  chosen (docs/scaling.md).

The galleries are synthetic but shaped like real SFace embeddings
(:mod:`facegate.bench.synthetic`: Gaussian models of identity centres and of photo
variation, fitted to real LFW embeddings of ``data_dir/faces``; ``fidelity`` in the result
compares score distributions). Queries are new photos of enrolled people (mated, 90 %) and
of people not enrolled (non-mated). recall@1: the index returns the same top template as
exact search for a mated query. Decision agreement: the same answer at SFace's FMR 1e-3
threshold (the same person, or "unknown" for both), over every query.

:func:`lfw_embeddings` (real embeddings of a sample of the photo set, or all of it) is
shared with :mod:`facegate.bench.memory`. Nothing here prints.
"""

from __future__ import annotations

import logging
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from facegate.bench.pipeline import environment
from facegate.bench.synthetic import FaceSpace, fidelity
from facegate.config import VisionSettings
from facegate.errors import ConfigError, FacegateError
from facegate.eval.embeddings import (
    cache_key,
    check_cache_dir,
    default_cache_dir,
    embed_images,
    file_list_digest,
    identity_of,
    list_images,
)
from facegate.gallery.index import RERANK, VectorIndex
from facegate.gallery.records import Template
from facegate.policy.thresholds import operating_point
from facegate.types import FloatArray
from facegate.vision.pipeline import FacePipeline, central_face

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

MODEL = "sface"
FMR = 1e-3  # the default operating point: decisions are compared at its threshold
DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (20_000,)
DEFAULT_QUERIES = 1000
QUICK_QUERIES = 500
WARMUP_QUERIES = 10  # searched untimed first: caches and lazy set-up
# Quick: the space is fitted to real embeddings of a sample (a few photos each of
# identities drawn at random), not of all 6,124 photos.
QUICK_SAMPLE_IMAGES = 800
QUICK_SAMPLE_PER_IDENTITY = 4


# --- real embeddings --------------------------------------------------------------------------
@dataclass(frozen=True)
class RealFaces:
    """Real SFace embeddings: ``vectors`` ``(N, D)`` float32, L2-normalised, one per photo
    where a face was found; ``paths`` relative to the photo root, ``identities`` their
    folders."""

    vectors: FloatArray
    paths: list[str]
    identities: list[str]
    photos_tried: int
    source: str
    seconds: float

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def _faces_root(data_dir: Path) -> Path:
    faces = Path(data_dir) / "faces"
    if not faces.is_dir():
        raise ConfigError(f"no photo set at {faces} (data_dir must hold faces/, the LFW photos)")
    return faces


def sample_photos(
    paths: Sequence[str], max_images: int, per_identity: int, seed: int = 0
) -> list[str]:
    """Up to ``per_identity`` photos (in name order) of identities taken in a seeded random
    order, until ``max_images``: a sample that spans the whole set, the same every run."""
    if max_images < 1 or per_identity < 1:
        raise ConfigError(
            f"max_images and per_identity must be at least 1, got {max_images}, {per_identity}"
        )
    groups: dict[str, list[str]] = defaultdict(list)
    for rel in sorted(paths):
        groups[identity_of(rel)].append(rel)
    names = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(names))
    chosen: list[str] = []
    for i in order:
        for rel in groups[names[int(i)]][:per_identity]:
            if len(chosen) == max_images:
                return chosen
            chosen.append(rel)
    return chosen


def _cached_full_set(faces: Path, paths: Sequence[str], settings: VisionSettings) -> bool:
    """Whether ``embed_images`` would answer from its cache (no embedding to do)."""
    try:
        folder = check_cache_dir(default_cache_dir())
    except ConfigError:
        return False
    key = cache_key(MODEL, settings, file_list_digest(faces, paths))
    return (folder / f"{key}.npz").is_file()


def lfw_embeddings(
    data_dir: Path,
    *,
    max_images: int | None = None,
    per_identity: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> RealFaces:
    """SFace embeddings of real photos under ``data_dir/faces``, one per photo (the face
    nearest the centre); photos without a face are left out.

    Without limits: every photo, through :func:`facegate.eval.embeddings.embed_images` and
    its on-disk cache (minutes the first time). With ``max_images``: a sample
    (:func:`sample_photos`, ``per_identity`` photos each, default 1), taken from that cache
    when it is warm, else embedded here (seconds).
    """
    started = time.perf_counter()
    faces = _faces_root(data_dir)
    settings = VisionSettings()
    every = list_images(faces)
    if not every:
        raise ConfigError(f"no photos under {faces}")
    if max_images is None:
        chosen = every
    else:
        chosen = sample_photos(every, max_images, per_identity or 1, seed)

    if max_images is None or _cached_full_set(faces, every, settings):
        if progress:
            progress(f"embedding {len(every)} photos with {MODEL} (cached after the first run)")
        full = embed_images(faces, MODEL, settings=settings)
        rows = full.rows(chosen)
        keep = [int(r) for r in rows if full.found[r]]
        return RealFaces(
            vectors=np.ascontiguousarray(full.vectors[keep]),
            paths=[full.paths[r] for r in keep],
            identities=[identity_of(full.paths[r]) for r in keep],
            photos_tried=len(chosen),
            source="embedding cache of the whole set" if full.from_cache else "whole set",
            seconds=round(time.perf_counter() - started, 2),
        )

    pipeline = FacePipeline(MODEL, settings)
    vectors: list[FloatArray] = []
    kept: list[str] = []
    for n, rel in enumerate(chosen, 1):
        try:
            image = pipeline.load(faces / rel)
            face = central_face(pipeline.detector.detect(image), image.shape[1], image.shape[0])
            if face is not None:
                vectors.append(pipeline.embedder.embed(image, [face])[0])
                kept.append(rel)
        except (FacegateError, ValueError) as error:  # undecodable, or not alignable
            log.warning("%s: not embedded (%s)", rel, error)
        if progress and (n % 200 == 0 or n == len(chosen)):
            progress(f"embedded {n}/{len(chosen)} sample photos")
    if not kept:
        raise ConfigError(f"no face found in the {len(chosen)} sampled photos under {faces}")
    return RealFaces(
        vectors=np.stack(vectors).astype(np.float32),
        paths=kept,
        identities=[identity_of(rel) for rel in kept],
        photos_tried=len(chosen),
        source=f"sample embedded in this run ({len(chosen)} photos)",
        seconds=round(time.perf_counter() - started, 2),
    )


# --- timing -----------------------------------------------------------------------------------
@dataclass
class Answers:
    """Top-1 row, its score and the search latency, per query."""

    ids: np.ndarray
    scores: np.ndarray
    latency_ms: np.ndarray

    def decisions(self, threshold: float) -> np.ndarray:
        """The top row where its score reaches the threshold, else -1 (unknown)."""
        return np.where(self.scores >= threshold, self.ids, -1)


def timed_search(index: Any, queries: np.ndarray) -> Answers:
    """A FAISS index: top-1 per query and its latency, one query at a time, one thread
    (after ``WARMUP_QUERIES`` untimed ones)."""
    faiss.omp_set_num_threads(1)
    for q in queries[:WARMUP_QUERIES]:
        index.search(q.reshape(1, -1), 1)
    ids = np.empty(len(queries), dtype=np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    latency = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        found_scores, found = index.search(q.reshape(1, -1), 1)
        latency[i] = (time.perf_counter() - start) * 1000
        ids[i], scores[i] = found[0, 0], found_scores[0, 0]
    return Answers(ids, scores, latency)


def timed_product(index: VectorIndex, queries: np.ndarray) -> Answers:
    """The same measure for facegate's own index class, called as the gallery calls it
    (template ids are the row numbers here)."""
    faiss.omp_set_num_threads(1)
    for q in queries[:WARMUP_QUERIES]:
        index.search(q, 1)
    ids = np.empty(len(queries), dtype=np.int64)
    scores = np.empty(len(queries), dtype=np.float32)
    latency = np.empty(len(queries))
    for i, q in enumerate(queries):
        start = time.perf_counter()
        found = index.search(q, 1)
        latency[i] = (time.perf_counter() - start) * 1000
        ids[i], scores[i] = int(found[0][0]), found[0][2]
    return Answers(ids, scores, latency)


def figures(
    name: str,
    got: Answers,
    exact: Answers,
    mated: np.ndarray,
    *,
    threshold: float,
    build_s: float,
    bytes_per_template: float,
    **params: Any,
) -> dict[str, Any]:
    """One row of the result: agreement with exact search, latency, build time, size."""
    return {
        "index": name,
        **params,
        # The figure that matters: photos of enrolled people get the same top template.
        "recall_at_1": float(np.mean(got.ids[mated] == exact.ids[mated])),
        # Every query, people not enrolled included (their top-1 is any of many impostors).
        "recall_at_1_all_queries": float(np.mean(got.ids == exact.ids)),
        # Same answer at the FMR 1e-3 threshold: the same person, or unknown for both.
        "decision_agreement": float(
            np.mean(got.decisions(threshold) == exact.decisions(threshold))
        ),
        "p50_ms": round(float(np.percentile(got.latency_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(got.latency_ms, 99)), 3),
        "mean_ms": round(float(np.mean(got.latency_ms)), 3),
        "build_s": round(build_s, 2),
        "bytes_per_template": round(float(bytes_per_template), 1),
    }


def _serialized_bytes_per_template(index: Any, n: int) -> float:
    return float(faiss.serialize_index(index).nbytes) / n


def alternatives(
    space: FaceSpace,
    gallery: np.ndarray,
    queries: np.ndarray,
    exact: Answers,
    mated: np.ndarray,
    rng: np.random.Generator,
    *,
    threshold: float,
    build_threads: int,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """HNSW and IVF, measured before the two-stage index was chosen. (HNSW with M=32 needed
    efSearch 256 for 0.99 at 100k; M=64, efConstruction=200 reaches it at 128.)"""
    n = len(gallery)
    rows: list[dict[str, Any]] = []
    faiss.omp_set_num_threads(build_threads)
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(space.dim, 64, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 200
    hnsw.add(gallery)
    build = time.perf_counter() - start
    size = _serialized_bytes_per_template(hnsw, n)
    for ef in (64, 128, 256):
        hnsw.hnsw.efSearch = ef
        got = timed_search(hnsw, queries)
        rows.append(
            figures(
                "hnsw",
                got,
                exact,
                mated,
                threshold=threshold,
                build_s=build,
                bytes_per_template=size,
                M=64,
                efSearch=ef,
            )
        )
        _tell(progress, rows[-1], n)
    del hnsw
    nlist = 1024 if n <= 200_000 else 4096
    faiss.omp_set_num_threads(build_threads)
    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(space.dim), space.dim, nlist, faiss.METRIC_INNER_PRODUCT
    )
    ivf.train(gallery[rng.choice(n, min(n, nlist * 40), replace=False)])
    ivf.add(gallery)
    build = time.perf_counter() - start
    size = _serialized_bytes_per_template(ivf, n)
    for nprobe in (32, 128, 256):
        ivf.nprobe = nprobe
        got = timed_search(ivf, queries)
        rows.append(
            figures(
                "ivf",
                got,
                exact,
                mated,
                threshold=threshold,
                build_s=build,
                bytes_per_template=size,
                nlist=nlist,
                nprobe=nprobe,
            )
        )
        _tell(progress, rows[-1], n)
    return rows


def _tell(progress: Progress | None, row: dict[str, Any], n: int) -> None:
    if progress is None:
        return
    params = ", ".join(
        f"{k}={row[k]}" for k in ("M", "efSearch", "nlist", "nprobe", "codes") if k in row
    )
    progress(
        f"{n:,} templates, {row['index']}{f' ({params})' if params else ''}: "
        f"recall@1 {row['recall_at_1']:.4f}, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
    )


def _measure_size(
    space: FaceSpace,
    n: int,
    queries_wanted: int,
    *,
    threshold: float,
    build_threads: int,
    alternatives_max: int,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(n)
    centres = space.centres(n, rng)
    gallery = space.photos(centres, rng)  # one template per person
    # New photos of enrolled people (mated), then of people not enrolled.
    mated = space.photos(centres[rng.integers(0, n, queries_wanted * 9 // 10)], rng)
    del centres
    nonmated = space.photos(space.centres(queries_wanted - len(mated), rng), rng)
    queries = np.concatenate([mated, nonmated])
    mated_mask = np.arange(len(queries)) < len(mated)
    rows: list[dict[str, Any]] = []

    faiss.omp_set_num_threads(build_threads)
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(space.dim)
    flat.add(gallery)
    build = time.perf_counter() - start
    exact = timed_search(flat, queries)
    rows.append(
        figures(
            "exact",
            exact,
            exact,
            mated_mask,
            threshold=threshold,
            build_s=build,
            bytes_per_template=_serialized_bytes_per_template(flat, n),
        )
    )
    _tell(progress, rows[-1], n)

    faiss.omp_set_num_threads(build_threads)
    start = time.perf_counter()
    product = VectorIndex(space.dim, approximate_above=1)
    product.add(Template(str(i), str(i), MODEL, v, 0.9) for i, v in enumerate(gallery))
    build = time.perf_counter() - start
    got = timed_product(product, queries)
    code_size = int(product._codes.code_size)
    rows.append(
        figures(
            "facegate-two-stage",
            got,
            exact,
            mated_mask,
            threshold=threshold,
            build_s=build,
            # float32 vectors for re-scoring + the 4-bit PQ codes scanned first
            bytes_per_template=4 * space.dim + code_size,
            codes=f"PQ{space.dim // 2}x4fs",
            rerank=RERANK,
        )
    )
    _tell(progress, rows[-1], n)
    del product, flat
    if n <= alternatives_max:
        rows += alternatives(
            space,
            gallery,
            queries,
            exact,
            mated_mask,
            rng,
            threshold=threshold,
            build_threads=build_threads,
            progress=progress,
        )
    return rows


# --- the benchmark ----------------------------------------------------------------------------
def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r["index"] == name)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator > 0 else None


def run_search_bench(
    *,
    data_dir: Path,
    quick: bool = False,
    progress: Progress | None = None,
    sizes: Sequence[int] | None = None,
    queries: int | None = None,
    build_threads: int = 2,
    alternatives_max: int = 0,
    on_size: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Search latency and agreement of facegate's index against exact FAISS.

    ``sizes``: gallery sizes (default 100k and 1M; quick: 20k). ``queries`` per size
    (default 1,000; quick: 500), 90 % mated. ``build_threads``: FAISS threads while building
    (searches run on one). ``alternatives_max``: also measure HNSW and IVF at sizes up to
    this (0, the default: never; each HNSW build takes a minute per 100k templates).
    ``on_size(result so far)`` is called after each size (to save partial results).

    Returns a JSON-ready dict: ``sizes`` maps each size to its rows (``index``: exact,
    facegate-two-stage, hnsw, ivf; ``recall_at_1``, ``recall_at_1_all_queries``,
    ``decision_agreement``, ``p50_ms``, ``p99_ms``, ``mean_ms``, ``build_s``,
    ``bytes_per_template``), plus ``summary``, ``ratios``, ``notes``, ``fidelity`` and
    ``environment``. Quick mode fits the face space to a sample of the photos.
    """
    chosen_sizes = (
        list(sizes) if sizes is not None else list(QUICK_SIZES if quick else DEFAULT_SIZES)
    )
    if not chosen_sizes or min(chosen_sizes) < 2:
        raise ConfigError(f"sizes must be at least 2 templates each, got {chosen_sizes}")
    n_queries = queries if queries is not None else (QUICK_QUERIES if quick else DEFAULT_QUERIES)
    if n_queries < 10:
        raise ConfigError(f"queries must be at least 10, got {n_queries}")
    if build_threads < 1:
        raise ConfigError(f"build_threads must be at least 1, got {build_threads}")

    started = datetime.now(UTC)
    if quick:
        real = lfw_embeddings(
            data_dir,
            max_images=QUICK_SAMPLE_IMAGES,
            per_identity=QUICK_SAMPLE_PER_IDENTITY,
            progress=progress,
        )
    else:
        real = lfw_embeddings(data_dir, progress=progress)
    space = FaceSpace.fit(real.vectors, real.identities)
    threshold = operating_point(MODEL, FMR).threshold
    previous_threads = faiss.omp_get_max_threads()
    report: dict[str, Any] = {
        "benchmark": "search",
        "quick": quick,
        "started_at": started.isoformat(timespec="seconds"),
        "model": MODEL,
        "threshold": {"fmr": FMR, "value": round(threshold, 4)},
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "faiss": faiss.__version__,
        "real_embeddings": len(real.vectors),
        "real_identities": len(set(real.identities)),
        "real_embeddings_source": real.source,
        "fidelity": {
            k: round(v, 4) for k, v in fidelity(real.vectors, real.identities, space).items()
        },
        "queries": n_queries,
        "mated_queries": n_queries * 9 // 10,
        "build_threads": build_threads,
        "search_threads": 1,
        "sizes": {},
    }
    try:
        for n in chosen_sizes:
            if progress:
                progress(f"searching {n:,} templates, {n_queries} queries")
            report["sizes"][str(n)] = _measure_size(
                space,
                n,
                n_queries,
                threshold=threshold,
                build_threads=build_threads,
                alternatives_max=alternatives_max,
                progress=progress,
            )
            if on_size is not None:
                on_size(report)
    finally:
        faiss.omp_set_num_threads(previous_threads)

    summary: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    for key, rows in report["sizes"].items():
        n = int(key)
        exact, ours = _row(rows, "exact"), _row(rows, "facegate-two-stage")
        label = f"{n:,}"
        summary += [
            {"label": f"facegate p50 @ {label}", "value": ours["p50_ms"], "unit": "ms"},
            {"label": f"facegate p99 @ {label}", "value": ours["p99_ms"], "unit": "ms"},
            {"label": f"exact FAISS p50 @ {label}", "value": exact["p50_ms"], "unit": "ms"},
            {"label": f"exact FAISS p99 @ {label}", "value": exact["p99_ms"], "unit": "ms"},
            {"label": f"recall@1 @ {label}", "value": ours["recall_at_1"], "unit": "fraction"},
        ]
        for name, value in (
            (f"speedup_p50_{n}", _ratio(exact["p50_ms"], ours["p50_ms"])),
            (f"speedup_p99_{n}", _ratio(exact["p99_ms"], ours["p99_ms"])),
            (f"recall_at_1_{n}", round(ours["recall_at_1"], 4)),
            (f"decision_agreement_{n}", round(ours["decision_agreement"], 4)),
            (
                f"bytes_per_template_{n}",
                _ratio(ours["bytes_per_template"], exact["bytes_per_template"]),
            ),
        ):
            if value is not None:
                ratios[name] = value
    report["summary"] = summary
    report["ratios"] = ratios
    report["notes"] = {
        "peer": "exact FAISS IndexFlatIP over the same gallery, searched the same way in the "
        "same run: the ground truth for recall and the baseline for speed",
        "speedup_p50_N / speedup_p99_N": "exact FAISS latency / facegate latency at N "
        "templates, per query on one thread (above 1: facegate is faster)",
        "recall_at_1_N": "share of mated queries whose top template is exact FAISS's top "
        "template (1.0: never a different answer)",
        "decision_agreement_N": "share of all queries answered the same as exact FAISS at the "
        f"FMR {FMR:g} threshold ({threshold:.4f}): same person, or unknown for both",
        "bytes_per_template_N": "facegate's in-memory bytes per template (float32 vector + "
        "PQ code) / exact FAISS's (float32 vector)",
        "two-stage mode": "VectorIndex(approximate_above=1): the two-stage search is measured "
        "at every size here; the product switches to it above gallery.approximate_above "
        "templates (default 250,000) and searches exactly below",
        "gallery": "synthetic, one template per person, drawn from Gaussian models of SFace "
        "identity centres and photo variation fitted to real LFW embeddings (see fidelity); "
        + ("quick: fitted to a sample of the photos" if quick else "fitted to every photo"),
    }
    report["environment"] = {**environment(), "faiss": faiss.__version__}
    return report


def plot_search(result: dict[str, Any], path: Path) -> None:
    """Latency per query against gallery size (both axes log): p50 (solid) and p99
    (dashed) of exact FAISS and of facegate's index, with facegate's recall@1 written at
    each size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted((int(s) for s in result["sizes"]), key=int)
    series = (
        ("exact", "exact FAISS (peer)", "#7f7f7f", "s"),
        ("facegate-two-stage", "facegate index", "#1f77b4", "o"),
    )
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, label, colour, marker in series:
        rows = [_row(result["sizes"][str(n)], name) for n in sizes]
        ax.plot(
            sizes, [r["p50_ms"] for r in rows], marker=marker, color=colour, label=f"{label} p50"
        )
        ax.plot(
            sizes,
            [r["p99_ms"] for r in rows],
            marker=marker,
            color=colour,
            linestyle="--",
            alpha=0.7,
            label=f"{label} p99",
        )
        if name == "facegate-two-stage":
            for n, row in zip(sizes, rows, strict=True):
                ax.annotate(
                    f"recall@1 {row['recall_at_1']:.3f}",
                    (n, row["p50_ms"]),
                    textcoords="offset points",
                    xytext=(0, -16),
                    ha="center",
                    fontsize=8,
                    color=colour,
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlim(sizes[0] / 1.8, sizes[-1] * 1.8)  # room for the labels
    lowest = min(_row(result["sizes"][str(n)], "facegate-two-stage")["p50_ms"] for n in sizes)
    ax.set_ylim(bottom=lowest / 3)
    ax.set_xlabel("templates in the gallery (one per person)")
    ax.set_ylabel("ms per query, one thread")
    ax.set_title("1:N search: facegate's index vs exact FAISS")
    ax.legend(fontsize=8)
    ax.grid(which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
