"""``facegate bench all``: every benchmark really run (quick sizes) on the shared data,
each written as JSON with its ratios against a peer or baseline, a PNG plot and a
markdown summary; a failed benchmark is reported, not hidden."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from facegate.bench.report import render_summary
from facegate.bench.suite import SuiteOptions, check_options
from facegate.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _finite_positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_bench_all_quick_writes_each_benchmark_with_its_ratios(
    data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "facegate", "bench", "all", "--quick"),
            *("--out", str(out), "--data", str(data_root)),
            # search and memory run (quick, for real) in their own tests.
            *("--only", "pipeline", "--only", "stream", "--only", "load"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    index = json.loads((out / "suite.json").read_text())
    ran = ["pipeline", "stream", "load"]
    assert list(index["benchmarks"]) == ran
    summary = (out / "summary.md").read_text()
    for name in ran:
        entry = index["benchmarks"][name]
        assert "error" not in entry, entry
        result = json.loads((out / f"{name}.json").read_text())
        assert result["ratios"], f"{name} has no ratio against a peer or baseline"
        for label, ratio in result["ratios"].items():
            assert _finite_positive(ratio), f"{name}: ratio {label} = {ratio}"
        assert (out / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert f"## {name}" in summary and f"]({name}.png)" in summary

    pipeline = json.loads((out / "pipeline.json").read_text())
    for model in ("sface", "fused"):
        run = pipeline["models"][model]
        assert run["images"] == 20 and run["failed_images"] == 0 and run["faces"] >= 20
        assert run["peer"] == "face_recognition" and run["peer_faces"] >= 15
    stream = json.loads((out / "stream.json").read_text())
    crowd = stream["clips"]["crowd_walking_1080p.mp4"]
    assert crowd["facegate_every_frame"]["analysed"] == crowd["frames"] == 105
    # Tracking embeds a few best shots per person; the peer embeds every face it sees.
    assert crowd["facegate_every_frame"]["embedded"] < crowd["peer_per_frame"]["embedded"] / 5
    load = json.loads((out / "load.json").read_text())
    assert load["requests"] > 0 and load["errors"] == 0 and load["wrong_answers"] == 0


def test_an_unknown_benchmark_or_missing_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown benchmark speed"):
        check_options(SuiteOptions(data_dir=tmp_path, out=tmp_path, only=("speed",)))
    with pytest.raises(ConfigError, match="no faces/ folder"):
        check_options(SuiteOptions(data_dir=tmp_path, out=tmp_path))


def test_the_summary_reports_a_failed_benchmark_and_keeps_the_others() -> None:
    index = {
        "started_at": "2026-11-26T00:00:00+00:00",
        "finished_at": "2026-11-26T00:01:00+00:00",
        "quick": True,
        "benchmarks": {
            "search": {"error": "BenchmarkError: no faces", "seconds": 0.5},
            "load": {"seconds": 9.0, "json": "load.json", "plot": "load.png"},
        },
    }
    results = {
        "load": {
            "summary": [
                {"label": "identify requests/s under load", "value": 12.5, "unit": "req/s"}
            ],
            "ratios": {"throughput_vs_one_at_a_time": 1.8},
            "notes": "baseline: one at a time",
        }
    }
    text = render_summary(index, results)
    assert "**Failed** after 0.5 s: `BenchmarkError: no faces`" in text
    assert "| identify requests/s under load | 12.5 req/s |" in text
    assert "| ratio: throughput_vs_one_at_a_time | 1.8x |" in text
    assert "quick: reduced sizes" in text


def test_a_failing_benchmark_is_reported_and_fails_the_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "faces").mkdir(parents=True)  # no photos: the pipeline benchmark cannot run
    (data / "video").mkdir()
    out = tmp_path / "out"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "facegate", "bench", "all", "--quick"),
            *("--out", str(out), "--data", str(data), "--only", "pipeline"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "1 benchmark(s) failed: pipeline" in done.stderr + done.stdout
    entry = json.loads((out / "suite.json").read_text())["benchmarks"]["pipeline"]
    assert entry["error"].startswith("ConfigError: no images under")
    assert "**Failed**" in (out / "summary.md").read_text()
    assert not (out / "pipeline.json").exists()
