"""Per-face embedding cost at batch sizes 1, 8 and 32, single thread, same run.

Shows that embedding many faces at once is not slower per face than one at a time.
Usage: python benchmarks/embed_batch.py [--model sface] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from facegate.vision.models import get_embedder, single_thread
from facegate.vision.pipeline import FacePipeline

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="sface")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    single_thread()
    pipeline = FacePipeline("sface")
    embedder = get_embedder(args.model)
    # One real photo's face, 32 times: the work per face is identical at every batch size,
    # so any difference is the batching itself.
    image = pipeline.load(FACES / "Colin_Powell" / "Colin_Powell_0001.jpg")
    face = pipeline.detect(image)[0]
    n = 32
    results = {}
    for batch in (1, 8, 32):
        embedder.embed(image, [face] * batch)  # warm-up
        best = float("inf")
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(n // batch):
                embedder.embed(image, [face] * batch)
            best = min(best, (time.perf_counter() - start) / n)
        results[str(batch)] = round(best * 1000, 3)
    report = {
        "model": args.model,
        "faces": n,
        "ms_per_face_by_batch": results,
        "batch32_vs_single": round(results["32"] / results["1"], 3),
        "threads": 1,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
