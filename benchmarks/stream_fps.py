"""Camera worker speed on one core (facegate.bench.stream): frames per second, real-time
factor against each clip's own rate, and speed against a per-frame peer, for both clips of
../shared/data/video. `facegate bench all` runs the same code.

Usage: python benchmarks/stream_fps.py [--detection-size 640] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from facegate.bench.stream import run_stream_bench

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detection-size", type=int, default=640)
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stream_fps.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = run_stream_bench(
            video_dir=args.video,
            work_dir=Path(work),
            detection_size=args.detection_size,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    text = json.dumps(results, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
