"""Embed every image under a root folder once per model, with an on-disk cache.

The root holds one folder per identity (``<Identity>/<file>.jpg``, as LFW does). Each image
gives one embedding: the face nearest the image centre (:func:`central_face`), which is the
labelled one in centred photo sets.

Failure handling: when YuNet finds no face at the configured threshold, detection is
retried once with a threshold of 0.3 on the image upscaled 2x (boxes and landmarks scaled
back); an image with still no face, or one that cannot be decoded, is a *failure*: its row
in :attr:`EmbeddingSet.vectors` is zero, :attr:`EmbeddingSet.found` is False, and every
score involving it is ``-inf`` (the lowest possible score). Callers count failures and say
how they were handled.

Cache: one ``.npz`` per (model, flip setting, detector settings, weights, file list) under
``~/.cache/facegate/eval`` (``$XDG_CACHE_HOME`` respected), never inside the project tree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

import facegate
from facegate.config import VisionSettings
from facegate.errors import ConfigError, ImageError
from facegate.types import Face, FloatArray
from facegate.vision.decode import IMAGE_SUFFIXES, find_image_files
from facegate.vision.detect import YuNetDetector
from facegate.vision.embed import ScoreSpace
from facegate.vision.models import get_embedder
from facegate.vision.pipeline import FacePipeline, central_face
from facegate.vision.registry import manifest

logger = logging.getLogger(__name__)

RETRY_THRESHOLD = 0.3
RETRY_UPSCALE = 2.0
CACHE_FORMAT = 1  # bump when the cached arrays or the embedding procedure change
FUSED_MEMBERS = ("sface", "dlib")
# Weights each model's embeddings depend on (their SHA-256 goes into the cache key).
_WEIGHTS_OF = {"sface": ("sface",), "dlib": ("dlib-resnet", "dlib-5pt")}

Advance = Callable[[int], None]


# --- file lists ---------------------------------------------------------------------------
def list_images(root: Path) -> list[str]:
    """Relative POSIX paths of every image under ``root`` (recursive), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"image root {root} is not a folder")
    return [p.relative_to(root).as_posix() for p in find_image_files(root)]


def identity_of(relative_path: str) -> str:
    """The identity of an image: its folder, relative to the root."""
    parent = Path(relative_path).parent.as_posix()
    return "" if parent == "." else parent


def file_list_digest(root: Path, paths: Sequence[str]) -> str:
    """SHA-256 of the sorted relative paths and their sizes (cheap: no file is read)."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        digest.update(f"{rel}\t{(Path(root) / rel).stat().st_size}\n".encode())
    return digest.hexdigest()


def content_digest(root: Path, paths: Sequence[str]) -> str:
    """SHA-256 over ``"<relative path>\\t<sha256 of the file>\\n"`` for the sorted paths."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        file_hash = hashlib.sha256((Path(root) / rel).read_bytes()).hexdigest()
        digest.update(f"{rel}\t{file_hash}\n".encode())
    return digest.hexdigest()


# --- progress -----------------------------------------------------------------------------
def _ignore_progress(steps: int) -> None:
    return None


@contextmanager
def progress_bar(enabled: bool, total: int, description: str) -> Iterator[Advance]:
    """A rich progress bar on stderr when ``enabled``; otherwise a no-op ``advance``."""
    if not enabled:
        yield _ignore_progress
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(steps: int) -> None:
            bar.advance(task, steps)

        yield advance


# --- the result ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EmbeddingSet:
    """One embedding per image under ``root``, for one model.

    ``vectors`` is ``(N, D)`` float32 with zero rows where ``found`` is False;
    ``retried`` marks images whose face was found only by the low-threshold retry.
    Scores follow ``space``: ``score(a, b) = a . (weights * b) + offset``.
    """

    model_id: str
    root: Path
    paths: tuple[str, ...]
    vectors: FloatArray
    found: NDArray[np.bool_]
    retried: NDArray[np.bool_]
    space: ScoreSpace = field(default_factory=ScoreSpace)
    flip_average: bool = False
    from_cache: bool = False
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != n:
            raise ValueError(f"vectors must be ({n}, D), got {self.vectors.shape}")
        if self.found.shape != (n,) or self.retried.shape != (n,):
            raise ValueError(
                f"found and retried must be ({n},), got {self.found.shape}, {self.retried.shape}"
            )

    @cached_property
    def _row_of(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    @property
    def failures(self) -> list[str]:
        """Relative paths of the images where no face was found (or that failed to decode)."""
        return [p for p, ok in zip(self.paths, self.found, strict=True) if not ok]

    def rows(self, paths: Sequence[str]) -> NDArray[np.intp]:
        """Row indices of ``paths``; raises ConfigError naming the first unknown one."""
        out = np.empty(len(paths), dtype=np.intp)
        for k, rel in enumerate(paths):
            row = self._row_of.get(rel)
            if row is None:
                raise ConfigError(f"image {rel!r} is not under the root {self.root}")
            out[k] = row
        return out

    def pair_scores(
        self, rows_a: NDArray[np.intp], rows_b: NDArray[np.intp]
    ) -> NDArray[np.float64]:
        """Score of each pair ``(rows_a[k], rows_b[k])``; ``-inf`` where either failed."""
        a = self.vectors[rows_a]
        b = self.space.prepare_query(self.vectors[rows_b])  # weights applied row-wise
        scores = np.einsum("ij,ij->i", a, b).astype(np.float64) + float(self.space.offset)
        scores[~(self.found[rows_a] & self.found[rows_b])] = -np.inf
        return scores

    def score_matrix(
        self, rows_a: NDArray[np.intp], rows_b: NDArray[np.intp]
    ) -> NDArray[np.float64]:
        """``(len(rows_a), len(rows_b))`` scores; ``-inf`` in rows/columns of failures."""
        a = self.vectors[rows_a]
        b = self.space.prepare_query(self.vectors[rows_b])  # weights applied row-wise
        scores = (a @ b.T).astype(np.float64) + float(self.space.offset)
        scores[~self.found[rows_a], :] = -np.inf
        scores[:, ~self.found[rows_b]] = -np.inf
        return scores


# --- cache --------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegate" / "eval"


def _project_root() -> Path | None:
    """The source checkout facegate runs from (``src/facegate`` -> the folder above ``src``)."""
    package = Path(facegate.__file__).resolve().parent
    candidate = package.parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else None


def check_cache_dir(cache_dir: Path) -> Path:
    """The resolved cache folder; refuses one inside the project or package tree."""
    resolved = Path(cache_dir).expanduser().resolve()
    package = Path(facegate.__file__).resolve().parent
    for forbidden in (p for p in (_project_root(), package) if p is not None):
        if resolved == forbidden or forbidden in resolved.parents:
            raise ConfigError(
                f"the embedding cache {resolved} must not be inside the project ({forbidden})"
            )
    return resolved


def _weights_digest(model_id: str) -> str:
    ids = (*_WEIGHTS_OF.get(model_id, (model_id,)), "yunet")
    try:
        return ",".join(manifest(i).sha256[:16] for i in ids)
    except Exception:  # an unregistered id fails later, with the registry's own error
        return "unknown"


def vision_code_digest() -> str:
    """SHA-256 of the vision package's source: any change to detection, alignment or
    embedding code makes cached embeddings stale, so it is part of the cache key."""
    import facegate.vision

    digest = hashlib.sha256()
    for source in sorted(Path(facegate.vision.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(model_id: str, settings: VisionSettings, file_digest: str) -> str:
    flip = settings.flip_average and model_id != "dlib"  # dlib ignores the flip setting
    parts = {
        "format": CACHE_FORMAT,
        "model": model_id,
        "flip": flip,
        "weights": _weights_digest(model_id),
        "code": vision_code_digest(),
        "detector": [
            settings.detection_threshold,
            settings.nms_threshold,
            settings.min_face_size,
            settings.max_detection_side,
            RETRY_THRESHOLD,
            RETRY_UPSCALE,
        ],
        "files": file_digest,
    }
    tag = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"{model_id}-{'flip' if flip else 'noflip'}-{tag}"


def _load_cache(path: Path, paths: Sequence[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            cached_paths = [str(p) for p in data["paths"]]
            if cached_paths != list(paths):
                logger.warning("embedding cache %s lists other files; ignoring it", path)
                return None
            return {
                "vectors": np.asarray(data["vectors"], dtype=np.float32),
                "found": np.asarray(data["found"], dtype=bool),
                "retried": np.asarray(data["retried"], dtype=bool),
            }
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("embedding cache %s is unreadable (%s); ignoring it", path, exc)
        return None


def _save_cache(path: Path, paths: Sequence[str], arrays: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, paths=np.array(list(paths), dtype=str), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("saved embeddings to %s", path)


# --- embedding ----------------------------------------------------------------------------
def _retry_detect(detector: YuNetDetector, image: NDArray[np.uint8]) -> list[Face]:
    """Faces on the image upscaled ``RETRY_UPSCALE``x, in the original image's pixels."""
    height, width = image.shape[:2]
    big = np.asarray(
        cv2.resize(
            image,
            (round(width * RETRY_UPSCALE), round(height * RETRY_UPSCALE)),
            interpolation=cv2.INTER_CUBIC,
        ),
        dtype=np.uint8,
    )
    faces = []
    for f in detector.detect(big):
        x1, y1, x2, y2 = (v / RETRY_UPSCALE for v in f.bbox)
        faces.append(
            Face(
                bbox=(x1, y1, min(x2, float(width)), min(y2, float(height))),
                landmarks=(f.landmarks / RETRY_UPSCALE).astype(np.float32),
                score=f.score,
            )
        )
    return faces


def _embed_member(
    root: Path,
    paths: Sequence[str],
    model_id: str,
    settings: VisionSettings,
    advance: Advance,
) -> dict[str, Any]:
    pipeline = FacePipeline(model_id, settings)
    retry_detector: YuNetDetector | None = None
    dim = pipeline.embedder.dim
    vectors = np.zeros((len(paths), dim), dtype=np.float32)
    found = np.zeros(len(paths), dtype=bool)
    retried = np.zeros(len(paths), dtype=bool)
    for row, rel in enumerate(paths):
        try:
            image = pipeline.load(root / rel)
        except ImageError as exc:
            logger.warning("%s: cannot decode (%s); counted as a failure", rel, exc)
            advance(1)
            continue
        faces = pipeline.detector.detect(image)
        if not faces:
            if retry_detector is None:
                retry_detector = YuNetDetector(
                    RETRY_THRESHOLD,
                    settings.nms_threshold,
                    settings.min_face_size,
                    round(settings.max_detection_side * RETRY_UPSCALE),
                    backend=settings.detector_backend,
                    device=settings.device,
                )
            faces = _retry_detect(retry_detector, image)
            retried[row] = bool(faces)
        face = central_face(faces, image.shape[1], image.shape[0])
        if face is None:
            logger.info("%s: no face found, even on retry; counted as a failure", rel)
        else:
            try:
                vectors[row] = pipeline.embedder.embed(image, [face])[0]
                found[row] = True
            except ValueError as exc:  # degenerate landmarks: the face cannot be aligned
                logger.warning("%s: face not embedded (%s); counted as a failure", rel, exc)
        advance(1)
    return {"vectors": vectors, "found": found, "retried": retried}


def embed_images(
    root: Path,
    model_id: str = "sface",
    *,
    settings: VisionSettings | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> EmbeddingSet:
    """Embed every image under ``root`` with ``model_id`` ("sface", "dlib", "fused", or a
    registered ONNX embedder), one face per image (the one nearest the centre).

    "fused" concatenates the sface and dlib sets (each cached on its own) and scores with
    the fused model's calibrated :class:`ScoreSpace`, so calibration must exist first.
    """
    started = time.perf_counter()
    root = Path(root)
    settings = settings or VisionSettings()
    paths = list_images(root)
    if not paths:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")

    if model_id == "fused":
        space = get_embedder("fused", settings.flip_average).space  # needs calibration
        members = [
            embed_images(
                root,
                m,
                settings=settings,
                cache_dir=cache_dir,
                use_cache=use_cache,
                progress=progress,
            )
            for m in FUSED_MEMBERS
        ]
        return EmbeddingSet(
            model_id="fused",
            root=root,
            paths=tuple(paths),
            vectors=np.concatenate([m.vectors for m in members], axis=1),
            found=np.logical_and.reduce([m.found for m in members]),
            retried=np.logical_or.reduce([m.retried for m in members]),
            space=space,
            flip_average=settings.flip_average,
            from_cache=all(m.from_cache for m in members),
            seconds=time.perf_counter() - started,
        )

    cache_path: Path | None = None
    arrays: dict[str, Any] | None = None
    if use_cache:
        folder = check_cache_dir(cache_dir or default_cache_dir())
        key = cache_key(model_id, settings, file_list_digest(root, paths))
        cache_path = folder / f"{key}.npz"
        arrays = _load_cache(cache_path, paths)
        if arrays is not None:
            logger.info(
                "%s embeddings of %d images from cache %s", model_id, len(paths), cache_path
            )
    from_cache = arrays is not None
    if arrays is None:
        flip = " (flip-averaged)" if settings.flip_average and model_id != "dlib" else ""
        with progress_bar(progress, len(paths), f"embedding with {model_id}{flip}") as advance:
            arrays = _embed_member(root, paths, model_id, settings, advance)
        if cache_path is not None:
            _save_cache(cache_path, paths, arrays)
    found = arrays["found"]
    if not found.all():
        logger.warning("%s: no face in %d of %d images", model_id, int((~found).sum()), len(paths))
    return EmbeddingSet(
        model_id=model_id,
        root=root,
        paths=tuple(paths),
        vectors=arrays["vectors"],
        found=found,
        retried=arrays["retried"],
        space=ScoreSpace(),  # every single-model embedder scores by plain cosine
        flip_average=settings.flip_average and model_id != "dlib",
        from_cache=from_cache,
        seconds=time.perf_counter() - started,
    )
