"""Load benchmark of the HTTP service (facegate.bench.load): concurrent clients identifying
against a 1,000-subject gallery, every answer checked against the request it answers.
`facegate bench all` runs the same code.

Writes JSON (``--out``, default benchmarks/results/load_identify.json) and prints it.
Usage: python benchmarks/load_identify.py [--seconds 60] [--clients 32] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from facegate.bench.load import run_load_bench

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".cache" / "load_identify")
    parser.add_argument("--faces", type=Path, default=ROOT.parent / "shared" / "data" / "faces")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--probes-per-person", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, help="server inference threads [its default]")
    parser.add_argument("--reuse", action="store_true", help="keep the gallery built before")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/load_identify.json")
    args = parser.parse_args()
    report = run_load_bench(
        faces=args.faces,
        work_dir=args.data_dir,
        subjects=args.subjects,
        probes_per_person=args.probes_per_person,
        clients=args.clients,
        seconds=args.seconds,
        workers=args.workers,
        reuse=args.reuse,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    report["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
