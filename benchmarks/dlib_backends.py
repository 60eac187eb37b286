"""dlib ResNet forward pass on one core: dlib's own against the converted ONNX graph
(facegate.vision.dlib_onnx) on onnxruntime and on OpenCV's DNN.

All three run in one process pinned to one CPU core (``os.sched_setaffinity``; run it
under ``taskset -c 0`` to choose the core), OpenCV on one thread, onnxruntime with one
intra- and one inter-op thread. The input is the same real 150x150 chips for all: LFW
faces found by the pipeline and cut by dlib's 5-point shape and ``get_face_chip``, as
DlibEmbedder cuts them. Timed: chips in, 128-D descriptors out (dlib's input
normalisation included for every backend; chip cutting excluded, it is the same for all).
Backends alternate call by call and the order rotates, so machine noise hits all alike.
Usage: python benchmarks/dlib_backends.py [--faces 24] [--rounds 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import dlib
import numpy as np
import onnxruntime

from facegate.config import VisionSettings
from facegate.vision.dlib_onnx import DlibResNetOnnx, build_onnx, read_dlib_resnet
from facegate.vision.models import quiet_opencv, single_thread
from facegate.vision.pipeline import FacePipeline, central_face
from facegate.vision.registry import manifest, weights_path

FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"
OUT = Path(__file__).resolve().parent / "results" / "dlib_backends.json"
BACKENDS = ("dlib", "onnxruntime", "opencv")
Chips = list[np.ndarray]


def real_chips(count: int) -> Chips:
    """One face chip per person, from the first photo of every 60th LFW person."""
    pipeline = FacePipeline(settings=VisionSettings(detector_backend="opencv"))
    shape = dlib.shape_predictor(str(weights_path(manifest("dlib-5pt"))))
    chips: Chips = []
    for person in sorted(p for p in FACES.iterdir() if p.is_dir())[::60]:
        image = pipeline.load(sorted(person.glob("*.jpg"))[0])
        face = central_face(pipeline.detect(image), image.shape[1], image.shape[0])
        if face is None:
            continue
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        x1, y1, x2, y2 = (round(v) for v in face.bbox)
        landmarks = shape(rgb, dlib.rectangle(x1, y1, x2, y2))
        chips.append(dlib.get_face_chip(rgb, landmarks, size=150, padding=0.25))
        if len(chips) == count:
            break
    return chips


def forward_passes() -> tuple[dict[str, Callable[[Chips], Any]], dict[str, float]]:
    """Chips -> descriptors for each backend (the same converted graph for both ONNX
    runtimes), and how each was built."""
    path = weights_path(manifest("dlib-resnet"))
    start = time.perf_counter()
    net = read_dlib_resnet(path.read_bytes())
    parse_s = time.perf_counter() - start
    model = build_onnx(net)
    convert_s = time.perf_counter() - start
    converted = DlibResNetOnnx(net, model)
    opencv_net = cv2.dnn.readNetFromONNX(np.frombuffer(model.SerializeToString(), np.uint8))
    reference = dlib.face_recognition_model_v1(str(path))

    def opencv(chips: Chips) -> Any:
        opencv_net.setInput(converted.blob(chips))
        return opencv_net.forward()

    passes = {
        "dlib": reference.compute_face_descriptor,
        "onnxruntime": converted.descriptors,
        "opencv": opencv,
    }
    setup = {"parse_s": round(parse_s, 3), "parse_and_convert_s": round(convert_s, 3)}
    return passes, setup


def worst_cosine(passes: dict[str, Callable[[Chips], Any]], chips: Chips) -> dict[str, float]:
    reference = np.array([np.asarray(v) for v in passes["dlib"](chips)], dtype=np.float64)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    worst = {}
    for backend in BACKENDS[1:]:
        out = np.asarray(passes[backend](chips), dtype=np.float64).reshape(len(chips), -1)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        worst[backend] = round(float(np.min(np.sum(out * reference, axis=1))), 12)
    return worst


def time_batches(
    passes: dict[str, Callable[[Chips], Any]], chips: Chips, batch: int, rounds: int
) -> dict[str, object]:
    """Median and p90 ms per face over ``rounds`` passes of all chips in ``batch``-sized
    calls, the backends alternating call by call."""
    groups = [chips[i : i + batch] for i in range(0, len(chips) - batch + 1, batch)]
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for forward in passes.values():  # warm-up, not timed
        forward(groups[0])
    for r in range(rounds):
        for i, group in enumerate(groups):
            shift = (r + i) % len(BACKENDS)
            for backend in BACKENDS[shift:] + BACKENDS[:shift]:
                start = time.perf_counter()
                passes[backend](group)
                times[backend].append((time.perf_counter() - start) * 1000 / len(group))
    median = {b: statistics.median(times[b]) for b in BACKENDS}
    return {
        "timed_calls_per_backend": len(times["dlib"]),
        "median_ms_per_face": {b: round(median[b], 2) for b in BACKENDS},
        "p90_ms_per_face": {b: round(float(np.percentile(times[b], 90)), 2) for b in BACKENDS},
        "speedup_over_dlib": {b: round(median["dlib"] / median[b], 2) for b in BACKENDS[1:]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=24, help="real chips (a multiple of 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the chips")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    single_thread()
    quiet_opencv()
    chips = real_chips(args.faces)
    passes, setup = forward_passes()
    results = {f"batch_{b}": time_batches(passes, chips, b, args.rounds) for b in (1, 8)}
    report = {
        "benchmark": "dlib_backends",
        "command": "taskset -c 0 python benchmarks/dlib_backends.py",
        "cpu_core": core,
        "threads": {"opencv": cv2.getNumThreads(), "onnxruntime_intra_op": 1, "dlib": 1},
        "versions": {
            "dlib": dlib.__version__,
            "opencv": cv2.__version__,
            "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "faces": len(chips),
        "rounds": args.rounds,
        "setup": setup,
        "worst_cosine_to_dlib": worst_cosine(passes, chips),
        "batches": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"worst_cosine_to_dlib": report["worst_cosine_to_dlib"]}))
    for name, result in results.items():
        print(name, json.dumps(result["median_ms_per_face"]), result["speedup_over_dlib"])


if __name__ == "__main__":
    main()
