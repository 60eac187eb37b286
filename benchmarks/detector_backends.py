"""YuNet detection speed on one core: OpenCV's FaceDetectorYN against onnxruntime.

Both backends of ``facegate.vision.detect.YuNetDetector`` run in one process pinned to one
CPU core (``os.sched_setaffinity``), OpenCV on one thread, onnxruntime with one intra- and
one inter-op thread. They alternate image by image (which goes first swaps every round),
so machine noise hits both alike. Workloads, from ../shared/data/video:
- 640x480: crowd-clip frames cropped to 4:3 and scaled to 640x480 (no clip is 4:3);
- 640x360: Hamilton-clip frames as they are;
- 1920x1080: crowd-clip frames, detected at 640 px longer side as the stream does (the
  detector's INTER_AREA downscale to 640x360 is inside the timed call, for both).
Usage: python benchmarks/detector_backends.py [--frames 20] [--rounds 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
import onnxruntime

from facegate.vision.detect import YuNetDetector
from facegate.vision.models import quiet_opencv, single_thread

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
OUT = Path(__file__).resolve().parent / "results" / "detector_backends.json"
BACKENDS = ("opencv", "onnxruntime")


def read_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(0, total - 1, count).astype(int).tolist())
    frames, index = [], 0
    while len(frames) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted:
            frames.append(frame)
        index += 1
    capture.release()
    return frames


def to_640x480(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    crop = height * 4 // 3
    left = (width - crop) // 2
    return cv2.resize(frame[:, left : left + crop], (640, 480), interpolation=cv2.INTER_AREA)


def time_workload(
    images: list[np.ndarray], detectors: dict[str, YuNetDetector], rounds: int
) -> dict[str, object]:
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    faces = {b: 0 for b in BACKENDS}
    for image in images[:3]:  # warm-up, not timed
        for detector in detectors.values():
            detector.detect(image)
    for r in range(rounds):
        for i, image in enumerate(images):
            order = BACKENDS if (r + i) % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                start = time.perf_counter()
                found = detectors[backend].detect(image)
                times[backend].append((time.perf_counter() - start) * 1000)
                if r == 0:
                    faces[backend] += len(found)
    median = {b: statistics.median(times[b]) for b in BACKENDS}
    return {
        "images": len(images),
        "timed_calls_per_backend": len(times["opencv"]),
        "faces_found": faces,
        "median_ms": {b: round(median[b], 2) for b in BACKENDS},
        "p90_ms": {b: round(float(np.percentile(times[b], 90)), 2) for b in BACKENDS},
        "speedup_opencv_over_onnxruntime": round(median["opencv"] / median["onnxruntime"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames sampled per clip")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the frames")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    single_thread()
    quiet_opencv()
    crowd = read_frames(DATA / "crowd_walking_1080p.mp4", args.frames)
    hamilton = read_frames(DATA / "short_hamilton_clip.mp4", args.frames)
    workloads = {
        "640x480": [to_640x480(f) for f in crowd],
        "640x360": hamilton,
        "1920x1080_at_640": crowd,
    }
    # As the stream worker builds it: threshold 0.6, NMS 0.3, no size floor, 640 px side.
    detectors = {b: YuNetDetector(0.6, 0.3, 1, 640, backend=b) for b in BACKENDS}
    results = {
        name: time_workload(images, detectors, args.rounds) for name, images in workloads.items()
    }
    report = {
        "benchmark": "detector_backends",
        "command": "python benchmarks/detector_backends.py",
        "cpu_core": core,
        "threads": {"opencv": cv2.getNumThreads(), "onnxruntime_intra_op": 1},
        "versions": {
            "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "rounds": args.rounds,
        "workloads": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, result in results.items():
        print(name, json.dumps(result["median_ms"]), result["speedup_opencv_over_onnxruntime"])


if __name__ == "__main__":
    main()
