"""Vector search at 100k and 1M templates: exact FAISS against facegate's approximate
index (a 4-bit PQ fast scan with exact re-scoring: facegate.gallery.index.VectorIndex) and,
up to ``--alternatives-max`` templates, the alternatives measured first (HNSW, IVF; their
1M figures are in results/search_index_hnsw_ivf.json, from this script before the change).

A thin command line over facegate.bench.search.run_search_bench (also run by
`facegate bench all`), where the method is described: a synthetic gallery shaped like real
SFace embeddings of ../shared/data/faces, mated and non-mated queries searched one at a
time on one thread, recall@1 against exact search.
Usage: python benchmarks/search_index.py [--sizes 100000 1000000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from facegate.bench.search import run_search_bench

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--alternatives-max", type=int, default=100_000)
    parser.add_argument("--data-dir", type=Path, default=DATA, help="holds faces/ (LFW)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    def save(report: dict[str, Any]) -> None:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    report = run_search_bench(
        data_dir=args.data_dir,
        sizes=args.sizes,
        queries=args.queries,
        build_threads=args.build_threads,
        alternatives_max=args.alternatives_max,
        progress=lambda message: print(message, flush=True),
        on_size=save,
    )
    save(report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
