"""The search benchmark, quick version, for real: facegate's index against exact FAISS on a
20k-template gallery fitted to real LFW embeddings. Speed is never asserted here (the
figures live in benchmarks/results/); agreement with exact search is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from facegate.bench.search import plot_search, run_search_bench, sample_photos
from facegate.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result(data_root: Path) -> dict[str, Any]:
    messages: list[str] = []
    got = run_search_bench(data_dir=data_root, quick=True, progress=messages.append)
    got["_messages"] = messages
    return got


def _rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (rows,) = result["sizes"].values()
    return {row["index"]: row for row in rows}


def test_quick_search_matches_exact_search(result: dict[str, Any]) -> None:
    assert result["benchmark"] == "search" and result["quick"] is True
    assert list(result["sizes"]) == ["20000"]
    rows = _rows(result)
    assert set(rows) == {"exact", "facegate-two-stage"}
    exact, ours = rows["exact"], rows["facegate-two-stage"]
    # Exact search is its own ground truth.
    assert exact["recall_at_1"] == exact["decision_agreement"] == 1.0
    for name in ("recall_at_1", "recall_at_1_all_queries", "decision_agreement"):
        assert 0.0 <= ours[name] <= 1.0
    assert ours["recall_at_1"] >= 0.9
    assert ours["decision_agreement"] >= 0.9
    for row in rows.values():
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    # float32 vectors, plus a 4-bit PQ code (D/4 bytes) for the two-stage index.
    assert exact["bytes_per_template"] == pytest.approx(4 * 128, rel=0.01)
    assert ours["bytes_per_template"] == 4 * 128 + 128 // 4
    assert result["real_embeddings"] > 300
    assert result["queries"] == 500 and result["mated_queries"] == 450
    assert result["_messages"], "progress was never called"


def test_summary_ratios_and_environment(result: dict[str, Any]) -> None:
    rows = _rows(result)
    ratios = result["ratios"]
    assert ratios["speedup_p50_20000"] == pytest.approx(
        rows["exact"]["p50_ms"] / rows["facegate-two-stage"]["p50_ms"], rel=0.01
    )
    assert ratios["recall_at_1_20000"] == pytest.approx(rows["facegate-two-stage"]["recall_at_1"])
    assert all(isinstance(v, float) and v > 0 for v in ratios.values())
    for row in result["summary"]:
        assert set(row) == {"label", "value", "unit"}
        assert isinstance(row["label"], str) and isinstance(row["value"], float)
    assert result["notes"]["peer"]
    env = result["environment"]
    assert env["cpu_model"] and env["faiss"] and env["python"]
    # The synthetic gallery must look like the real embeddings it was fitted to.
    fid = result["fidelity"]
    assert abs(fid["synthetic_impostor_mean"] - fid["real_impostor_mean"]) < 0.1
    assert abs(fid["synthetic_genuine_mean"] - fid["real_genuine_mean"]) < 0.15


def test_result_is_json_and_plot_is_a_png(result: dict[str, Any], tmp_path: Path) -> None:
    clean = {k: v for k, v in result.items() if k != "_messages"}
    assert json.loads(json.dumps(clean)) == clean
    path = tmp_path / "search.png"
    plot_search(clean, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_sample_is_spread_deterministic_and_bounded() -> None:
    paths = [f"p{i:03d}/p{i:03d}_{j:04d}.jpg" for i in range(100) for j in range(1, 6)]
    first = sample_photos(paths, 50, 2)
    assert first == sample_photos(paths, 50, 2) and len(first) == 50
    per_person: dict[str, int] = {}
    for rel in first:
        per_person[rel.split("/")[0]] = per_person.get(rel.split("/")[0], 0) + 1
    assert max(per_person.values()) == 2 and len(per_person) == 25
    assert sample_photos(paths, 50, 2, seed=1) != first
    assert len(sample_photos(paths, 10_000, 1)) == 100


def test_bad_arguments_are_config_errors(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ConfigError, match="faces"):
        run_search_bench(data_dir=tmp_path, quick=True)
    with pytest.raises(ConfigError, match="sizes"):
        run_search_bench(data_dir=data_root, sizes=[1])
    with pytest.raises(ConfigError, match="queries"):
        run_search_bench(data_dir=data_root, sizes=[100], queries=2)
