"""Camera worker speed on one core: frames per second, real-time factor, drops.

For each clip, in one run, pinned to one CPU core with OpenCV and the video decoder on one
thread each:
- facegate: the camera worker analysing every frame (decode, detection at
  ``detection_size``, tracking, best shots embedded and identified against the three
  enrolled people of ``video/enroll``);
- peer: the same models used frame by frame without tracking (detect, then embed and
  identify every face of every frame), what a per-frame loop such as face_recognition's
  video examples does;
- paced (not in ``quick``): the worker reading the clip at its own frame rate, as a live
  camera delivers it: frames decoded, analysed, skipped and dropped.
Ratios: frames per second over the clip's own rate (real-time factor), and over the peer's.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from facegate.config import CameraSettings, Settings
from facegate.errors import BenchmarkError
from facegate.events.publisher import Publisher
from facegate.gallery.records import ConsentGrant
from facegate.recognition import FaceRecognizer
from facegate.stream.capture import CaptureOptions
from facegate.stream.worker import CameraWorker
from facegate.vision.models import single_thread

CLIPS = ("short_hamilton_clip.mp4", "crowd_walking_1080p.mp4")
QUICK_CLIPS = ("crowd_walking_1080p.mp4",)
PEOPLE = {
    "Lin-Manuel Miranda": "lin-manuel-miranda.png",
    "Alex Lacamoire": "alex-lacamoire.png",
    "Barack Obama": "obama.jpg",
}
Progress = Callable[[str], None]


def clip_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Frames, frame rate and size of a clip (decoded once to count frames)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.average_rate or 0), (stream.width, stream.height)


def run_worker(
    recognizer: FaceRecognizer, clip: Path, detection_size: int, options: CaptureOptions
) -> dict[str, Any]:
    camera = CameraSettings(
        name="bench", source=str(clip), detection_size=detection_size, realtime=options.realtime
    )
    worker = CameraWorker(camera, recognizer, Publisher())
    start = time.perf_counter()
    worker.run(options)
    wall = time.perf_counter() - start
    assert worker.capture is not None
    stats = worker.capture.stats
    counts = worker.counts
    return {
        "wall_s": round(wall, 3),
        "decoded": stats.decoded,
        "analysed": counts.frames,
        "skipped": stats.skipped,
        "dropped": stats.dropped,
        "faces": counts.faces,
        "embedded": counts.embedded,
        "events": dict(counts.events),
        "fps": round(counts.frames / wall, 1),
    }


def run_peer(recognizer: FaceRecognizer, clip: Path, detection_size: int) -> dict[str, Any]:
    """Every face of every frame embedded and identified (no tracking)."""
    pipeline = recognizer.pipeline
    space = pipeline.embedder.space
    detector = pipeline.detector
    old_side, detector.max_side = detector.max_side, detection_size
    frames = faces = 0
    start = time.perf_counter()
    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for decoded in container.decode(stream):
                image = np.asarray(decoded.to_ndarray(format="bgr24"), dtype=np.uint8)
                found = pipeline.analyze(image)
                for face in found:
                    assert face.embedding is not None
                    recognizer.gallery.search(recognizer.model_id, face.embedding, space, 1)
                frames += 1
                faces += len(found)
    finally:
        detector.max_side = old_side
    wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 3),
        "analysed": frames,
        "faces": faces,
        "embedded": faces,
        "fps": round(frames / wall, 1),
    }


@contextmanager
def one_core() -> Iterator[int]:
    """Pin this process to its first allowed core (and OpenCV to one thread) meanwhile."""
    before = os.sched_getaffinity(0)
    core = sorted(before)[0]
    threads = cv2.getNumThreads()
    os.sched_setaffinity(0, {core})
    single_thread()
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)
        cv2.setNumThreads(threads)


def _clip_entry(
    recognizer: FaceRecognizer, clip: Path, detection_size: int, quick: bool
) -> dict[str, Any]:
    frames, rate, size = clip_info(clip)
    every = CaptureOptions(realtime=False, target_fps=1000.0, queue_frames=4)
    if not quick:
        run_worker(recognizer, clip, detection_size, every)  # warm-up: caches, lazy loads
    facegate = run_worker(recognizer, clip, detection_size, every)
    peer = run_peer(recognizer, clip, detection_size)
    entry: dict[str, Any] = {
        "frames": frames,
        "fps": round(rate, 2),
        "size": list(size),
        "facegate_every_frame": facegate,
        "peer_per_frame": peer,
        "realtime_factor": round(facegate["fps"] / rate, 2),
        "speedup_vs_peer": round(facegate["fps"] / peer["fps"], 2),
    }
    if not quick:
        paced = CaptureOptions(realtime=True, target_fps=rate)
        entry["paced_all_frames"] = run_worker(recognizer, clip, detection_size, paced)
        entry["paced_default"] = run_worker(
            recognizer, clip, detection_size, CaptureOptions(realtime=True)
        )
    return entry


def run_stream_bench(
    *,
    video_dir: Path,
    work_dir: Path,
    detection_size: int = 640,
    quick: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Both clips of ``video_dir`` (``quick``: the 1080p crowd clip, no paced runs)."""
    log = progress or (lambda message: None)
    clips = QUICK_CLIPS if quick else CLIPS
    missing = [name for name in clips if not (video_dir / name).is_file()]
    missing += [photo for photo in PEOPLE.values() if not (video_dir / "enroll" / photo).is_file()]
    if missing:
        raise BenchmarkError(f"{video_dir} lacks {', '.join(missing)}")
    results: dict[str, Any] = {"benchmark": "stream", "quick": quick, "clips": {}}
    with one_core() as core:
        settings = Settings(data_dir=work_dir)
        recognizer = FaceRecognizer.open(settings)
        try:
            for name, photo in PEOPLE.items():
                recognizer.enroll(
                    name,
                    [video_dir / "enroll" / photo],
                    # Public figures of the sample clip stand in for consenting subjects.
                    consent=ConsentGrant("explicit_consent", "benchmark", "stream bench"),
                )
            for name in clips:
                log(f"stream: {name}")
                results["clips"][name] = _clip_entry(
                    recognizer, video_dir / name, detection_size, quick
                )
        finally:
            recognizer.close()
    results["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "core": core,
        "cores_used": 1,
        "opencv_threads": 1,
        "decoder_threads": 1,
    }
    results["detection_size"] = detection_size
    results["ratios"] = {
        f"{name}: {kind}": entry[key]
        for name, entry in results["clips"].items()
        for kind, key in (("real-time factor", "realtime_factor"), ("vs peer", "speedup_vs_peer"))
    }
    results["summary"] = [
        {"label": f"{name} frames/s", "value": entry["facegate_every_frame"]["fps"], "unit": "fps"}
        for name, entry in results["clips"].items()
    ] + [
        {"label": f"{name} peer frames/s", "value": entry["peer_per_frame"]["fps"], "unit": "fps"}
        for name, entry in results["clips"].items()
    ]
    results["notes"] = (
        "One core. real-time factor = analysed frames/s over the clip's frame rate; vs peer "
        "= frames/s over the same models run on every face of every frame without tracking. "
        "Each clip is watched once untimed first (not in quick runs)."
    )
    return results


def plot_stream(result: dict[str, Any], path: Path) -> None:
    """Frames per second of facegate and the per-frame peer per clip, with real time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["clips"])
    ours = [result["clips"][n]["facegate_every_frame"]["fps"] for n in names]
    peer = [result["clips"][n]["peer_per_frame"]["fps"] for n in names]
    rate = [result["clips"][n]["fps"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], ours, 0.4, label="facegate worker")
    ax.bar([x + 0.2 for x in xs], peer, 0.4, label="per-frame peer")
    ax.scatter(list(xs), rate, color="black", marker="_", s=900, label="real time", zorder=3)
    ax.set_xticks(list(xs), names)
    ax.set_xlim(-0.7, len(names) - 0.3)
    ax.set_ylabel("frames per second (one core)")
    ax.set_title(f"Camera worker, detection at {result['detection_size']} px")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
