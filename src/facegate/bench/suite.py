"""``facegate bench all``: every benchmark, one after another, each against its peer or
baseline in the same run; JSON, a plot and a markdown summary written to one folder.

Each benchmark is a function returning a JSON-ready dict with ``summary`` rows (label,
value, unit), ``ratios`` (against the peer or baseline measured in the same run) and
``notes``; a benchmark that fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facegate.bench.report import write_summary
from facegate.errors import ConfigError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
NAMES = ("pipeline", "search", "stream", "load", "memory")


@dataclass(frozen=True)
class SuiteOptions:
    """Where the shared data is, how thorough to be, and where to write."""

    data_dir: Path  # ../shared/data: faces/ (LFW) and video/
    out: Path
    quick: bool = False
    only: Sequence[str] = NAMES


def _pipeline(options: SuiteOptions, work: Path, progress: Progress) -> dict[str, Any]:
    from facegate.bench.pipeline import run_pipeline_bench

    limit = 20 if options.quick else 300
    models: dict[str, Any] = {}
    for model in ("sface", "fused"):
        progress(f"pipeline: {model} against face_recognition on {limit} images")
        models[model] = run_pipeline_bench(
            options.data_dir / "faces", limit=limit, model=model, peer="face_recognition"
        )
    return {
        "benchmark": "pipeline",
        "quick": options.quick,
        "models": models,
        "summary": [
            row
            for model, r in models.items()
            for row in (
                {"label": f"facegate {model} images/s", "value": r["images_per_s"], "unit": "1/s"},
                {
                    "label": f"face_recognition images/s (beside {model})",
                    "value": r["peer_images_per_s"],
                    "unit": "1/s",
                },
            )
        ],
        "ratios": {f"{model} vs face_recognition": r["speedup"] for model, r in models.items()},
        "notes": (
            "One thread, decode + detect + align + embed every face, the same LFW images for "
            "both sides in alternating blocks. face_recognition: HOG detector, 5-point "
            "landmarks, dlib ResNet (its defaults)."
        ),
        "environment": next(iter(models.values()))["environment"],
    }


def _search(options: SuiteOptions, work: Path, progress: Progress) -> dict[str, Any]:
    from facegate.bench.search import run_search_bench

    return run_search_bench(data_dir=options.data_dir, quick=options.quick, progress=progress)


def _stream(options: SuiteOptions, work: Path, progress: Progress) -> dict[str, Any]:
    from facegate.bench.stream import run_stream_bench

    return run_stream_bench(
        video_dir=options.data_dir / "video", work_dir=work, quick=options.quick, progress=progress
    )


def _load(options: SuiteOptions, work: Path, progress: Progress) -> dict[str, Any]:
    from facegate.bench.load import run_load_bench

    return run_load_bench(
        faces=options.data_dir / "faces", work_dir=work, quick=options.quick, progress=progress
    )


def _memory(options: SuiteOptions, work: Path, progress: Progress) -> dict[str, Any]:
    from facegate.bench.memory import run_memory_bench

    return run_memory_bench(
        data_dir=options.data_dir, work_dir=work, quick=options.quick, progress=progress
    )


RUNNERS: dict[str, Callable[[SuiteOptions, Path, Progress], dict[str, Any]]] = {
    "pipeline": _pipeline,
    "search": _search,
    "stream": _stream,
    "load": _load,
    "memory": _memory,
}


def _plot(name: str, result: dict[str, Any], path: Path) -> None:
    from facegate.bench.plots import PLOTTERS

    PLOTTERS[name](result, path)


def run_one(name: str, options: SuiteOptions, progress: Progress) -> dict[str, Any]:
    """One benchmark in this process, in a scratch folder of its own; a failure becomes
    ``{"error": ...}`` so that it is reported, not raised."""
    with tempfile.TemporaryDirectory(prefix=f"facegate-bench-{name}-") as work:
        try:
            return RUNNERS[name](options, Path(work), progress)
        except Exception as error:  # one failed benchmark must not lose the others
            log.exception("benchmark %s failed", name)
            return {"error": f"{type(error).__name__}: {error}"}


def _run_isolated(name: str, options: SuiteOptions) -> dict[str, Any]:
    """One benchmark in a fresh Python process (``facegate.bench.run_one``): what one
    leaves behind (a million-vector index, thread pools, a fragmented heap) must not slow
    the next one down; measured, the crowd clip ran at 43 fps after the search benchmark
    in the same process against 53 on its own. Its progress goes to this stderr."""
    with tempfile.TemporaryDirectory(prefix=f"facegate-bench-{name}-result-") as scratch:
        result_path = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "facegate.bench.run_one", name]
        command += ["--data", str(options.data_dir), "--result", str(result_path)]
        command += ["--quick"] if options.quick else []
        done = subprocess.run(command, check=False)
        if not result_path.is_file():
            return {"error": f"the benchmark process exited with status {done.returncode}"}
        loaded: dict[str, Any] = json.loads(result_path.read_text())
        return loaded


def check_options(options: SuiteOptions) -> None:
    unknown = [name for name in options.only if name not in RUNNERS]
    if unknown:
        raise ConfigError(f"unknown benchmark {', '.join(unknown)}; expected {', '.join(NAMES)}")
    for sub in ("faces", "video"):
        if not (options.data_dir / sub).is_dir():
            raise ConfigError(f"{options.data_dir} has no {sub}/ folder (the shared data)")


def run_suite(options: SuiteOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the chosen benchmarks; write ``<name>.json``, ``<name>.png``, ``summary.md`` and
    ``suite.json`` under ``options.out``. Returns the index written to ``suite.json``."""
    say = progress or (lambda message: None)
    check_options(options)
    options.out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": options.quick,
        "data_dir": str(options.data_dir),
        "benchmarks": {},
    }
    results: dict[str, dict[str, Any]] = {}
    for name in [n for n in NAMES if n in options.only]:
        say(f"{name}: running")
        started = time.perf_counter()
        entry: dict[str, Any] = {}
        result = _run_isolated(name, options)
        entry["seconds"] = round(time.perf_counter() - started, 1)
        if "error" in result:
            entry["error"] = result["error"]
        else:
            results[name] = result
            json_path = options.out / f"{name}.json"
            json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
            entry["json"] = json_path.name
            try:
                _plot(name, result, options.out / f"{name}.png")
                entry["plot"] = f"{name}.png"
            except Exception as error:
                log.exception("plot of %s failed", name)
                entry["plot_error"] = f"{type(error).__name__}: {error}"
        index["benchmarks"][name] = entry
        say(f"{name}: {'failed' if 'error' in entry else 'done'} in {entry['seconds']} s")
    index["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    (options.out / "suite.json").write_text(json.dumps(index, indent=2) + "\n")
    write_summary(options.out / "summary.md", index, results)
    return index
