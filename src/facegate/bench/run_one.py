"""``python -m facegate.bench.run_one NAME --data DIR --result FILE [--quick]``: one
benchmark of ``facegate bench all`` in a process of its own; its result (or
``{"error": ...}``) is written as JSON to FILE and its progress logged to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from facegate.bench.suite import NAMES, SuiteOptions, run_one


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facegate.bench.run_one")
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    options = SuiteOptions(data_dir=args.data, out=args.result.parent, quick=args.quick)

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    progress = logging.getLogger("facegate.bench").info
    result = run_one(args.name, options, progress)
    args.result.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
