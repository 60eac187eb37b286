"""Camera worker speed on one core: frames per second, real-time factor, drops.

For each clip of ../shared/data/video, in one run, pinned to one CPU core with OpenCV
and the video decoder on one thread each:
- facegate: the camera worker analysing every frame (decode, detection at --detection-size,
  tracking, best shots embedded and identified against the three enrolled people);
- peer: the same models used frame by frame without tracking (detect, then embed and
  identify every face of every frame), what a per-frame loop such as face_recognition's
  video examples does;
- paced: the worker reading the clip at its own frame rate, as a live camera delivers it,
  with the default analysis rate: frames decoded, analysed, skipped and dropped.
Usage: python benchmarks/stream_fps.py [--detection-size 640] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import cv2

from facegate.config import CameraSettings, Settings
from facegate.events.publisher import Publisher
from facegate.gallery.records import ConsentGrant
from facegate.recognition import FaceRecognizer
from facegate.stream.capture import CaptureOptions
from facegate.stream.worker import CameraWorker
from facegate.vision.models import single_thread

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
CLIPS = ("short_hamilton_clip.mp4", "crowd_walking_1080p.mp4")
PEOPLE = {
    "Lin-Manuel Miranda": "lin-manuel-miranda.png",
    "Alex Lacamoire": "alex-lacamoire.png",
    "Barack Obama": "obama.jpg",
}


def clip_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.average_rate or 0), (stream.width, stream.height)


def run_worker(
    recognizer: FaceRecognizer, clip: Path, detection_size: int, options: CaptureOptions
) -> dict[str, object]:
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


def run_peer(recognizer: FaceRecognizer, clip: Path, detection_size: int) -> dict[str, object]:
    """Every face of every frame embedded and identified (no tracking)."""
    pipeline = recognizer.pipeline
    space = pipeline.embedder.space
    detector = pipeline.detector
    detector.max_side = detection_size
    frames = faces = 0
    start = time.perf_counter()
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for decoded in container.decode(stream):
            image = decoded.to_ndarray(format="bgr24")
            found = pipeline.analyze(image)
            for face in found:
                assert face.embedding is not None
                recognizer.gallery.search(recognizer.model_id, face.embedding, space, 1)
            frames += 1
            faces += len(found)
    wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 3),
        "analysed": frames,
        "faces": faces,
        "embedded": faces,
        "fps": round(frames / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detection-size", type=int, default=640)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stream_fps.json"))
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    single_thread()
    results: dict[str, object] = {
        "benchmark": "stream_fps",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_used": 1,
            "opencv_threads": cv2.getNumThreads(),
            "decoder_threads": 1,
        },
        "detection_size": args.detection_size,
        "clips": {},
    }
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        recognizer = FaceRecognizer.open(settings)
        for name, photo in PEOPLE.items():
            recognizer.enroll(
                name,
                [DATA / "enroll" / photo],
                consent=ConsentGrant("explicit_consent", "bench", "bench"),
            )
        for clip_name in CLIPS:
            clip = DATA / clip_name
            frames, rate, size = clip_info(clip)
            every = CaptureOptions(realtime=False, target_fps=1000.0, queue_frames=4)
            facegate = run_worker(recognizer, clip, args.detection_size, every)
            peer = run_peer(recognizer, clip, args.detection_size)
            paced = run_worker(
                recognizer,
                clip,
                args.detection_size,
                CaptureOptions(realtime=True, target_fps=rate),
            )
            paced_default = run_worker(
                recognizer, clip, args.detection_size, CaptureOptions(realtime=True)
            )
            entry = {
                "frames": frames,
                "fps": round(rate, 2),
                "size": list(size),
                "facegate_every_frame": facegate,
                "peer_per_frame": peer,
                "realtime_factor": round(float(facegate["fps"]) / rate, 2),  # type: ignore[arg-type]
                "speedup_vs_peer": round(float(facegate["fps"]) / float(peer["fps"]), 2),  # type: ignore[arg-type]
                "paced_all_frames": paced,
                "paced_default_15fps": paced_default,
            }
            results["clips"][clip_name] = entry  # type: ignore[index]
            print(clip_name, json.dumps(entry))
        recognizer.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
