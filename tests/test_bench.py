"""The pipeline benchmark on a few real photos: contract keys and consistent counts.

Speed is never asserted here; the figures live in benchmarks/results/.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from facegate.bench.pipeline import (
    STAGES,
    PeerUnavailableError,
    find_images,
    import_face_recognition,
    run_pipeline_bench,
)
from facegate.cli import bench_cmds
from facegate.errors import ConfigError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_IMAGES = 3


@pytest.fixture(scope="module")
def faces_dir() -> Path:
    root = SHARED_DATA / "faces"
    if not root.is_dir():
        pytest.skip(f"real photos not found at {root} (the shared LFW set)")
    return root


@pytest.fixture(scope="module")
def peer_available() -> None:
    try:
        import_face_recognition()
    except PeerUnavailableError as exc:
        pytest.skip(f"face_recognition is not importable: {exc}")


def _check_side(result: dict[str, Any], prefix: str) -> None:
    images = result["images"]
    assert result[f"{prefix}images_per_s"] > 0
    stage_ms = result[f"{prefix}stage_ms"]
    assert set(stage_ms) == set(STAGES)
    assert all(v is not None and v >= 0 for v in stage_ms.values())
    failed = result[f"{prefix}failed_images"]
    without = result[f"{prefix}images_without_face"]
    assert 0 <= failed <= images
    assert 0 <= without <= images - failed
    # Every image that succeeded with a face contributed at least one face.
    assert result[f"{prefix}faces"] >= images - failed - without
    ms = result[f"{prefix}ms_per_image"]
    assert 0 < ms["p50"] <= ms["max"]
    assert ms["mean"] <= ms["max"]
    # The stages are parts of the per-image time (which also holds a little overhead).
    assert sum(stage_ms.values()) <= ms["mean"] * 1.05 + 0.1
    assert math.isclose(
        result[f"{prefix}images_per_s"], 1000 / ms["mean"], rel_tol=0.01, abs_tol=0.01
    )
    assert 0 < result[f"{prefix}cpu_per_wall"] < 1.5  # one busy thread, not several


def test_find_images_is_recursive_sorted_and_limited(tmp_path: Path) -> None:
    for name in ("b/2.JPG", "b/1.png", "a/z.webp", "a/y.bmp", "c.jpeg", "notes.txt", "x.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path, None)]
    assert found == ["a/y.bmp", "a/z.webp", "b/1.png", "b/2.JPG", "c.jpeg"]
    assert [p.name for p in find_images(tmp_path, 2)] == ["y.bmp", "z.webp"]


def test_bad_arguments_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no images"):
        run_pipeline_bench(tmp_path)
    with pytest.raises(ConfigError, match="unknown peer"):
        run_pipeline_bench(tmp_path, peer="insightface")
    with pytest.raises(ConfigError, match="directory"):
        run_pipeline_bench(tmp_path / "missing")


def test_missing_peer_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "face_recognition", None)  # import now fails
    with pytest.raises(PeerUnavailableError, match="--no-deps face-recognition") as info:
        import_face_recognition()
    assert "facegate[bench]" in str(info.value)
    assert "dlib-bin" in str(info.value)


def test_pipeline_bench_without_peer(faces_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = run_pipeline_bench(
        faces_dir, limit=N_IMAGES, warmup=1, progress=lambda d, t: calls.append((d, t))
    )
    assert result["images"] == N_IMAGES
    assert result["model"] == "sface"
    assert result["warmup_images"] == 1
    _check_side(result, "")
    assert "peer_images_per_s" not in result
    assert "speedup" not in result
    assert calls[-1] == (N_IMAGES, N_IMAGES)
    assert result["threads"]["opencv_threads"] == 1
    assert result["environment"]["opencv"]
    json.dumps(result)  # JSON-ready as returned


@pytest.mark.usefixtures("peer_available")
def test_pipeline_bench_with_peer(faces_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = run_pipeline_bench(
        faces_dir,
        limit=N_IMAGES,
        warmup=1,
        block_size=2,
        peer="face_recognition",
        progress=lambda d, t: calls.append((d, t)),
    )
    assert result["images"] == N_IMAGES
    assert result["peer"] == "face_recognition"
    _check_side(result, "")
    _check_side(result, "peer_")
    assert math.isclose(
        result["speedup"], result["images_per_s"] / result["peer_images_per_s"], abs_tol=0.01
    )
    assert sum(result["face_found_agreement"].values()) == N_IMAGES
    assert calls[-1] == (2 * N_IMAGES, 2 * N_IMAGES)
    assert [d for d, _ in calls] == list(range(1, 2 * N_IMAGES + 1))
    assert result["environment"]["face_recognition"]
    json.dumps(result)


@pytest.mark.usefixtures("peer_available")
def test_importing_the_peer_keeps_truncated_images_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """face_recognition sets PIL's LOAD_TRUNCATED_IMAGES on import; that must not loosen
    facegate's decoder for the rest of the process."""
    from PIL import ImageFile

    for name in [m for m in sys.modules if m.split(".")[0] == "face_recognition"]:
        monkeypatch.delitem(sys.modules, name)  # import it afresh; restored afterwards
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    import_face_recognition()
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_cli_prints_json_and_table(faces_dir: Path) -> None:
    cli = typer.Typer()
    cli.add_typer(bench_cmds.app, name="bench")

    @cli.callback()
    def _root() -> None:
        """Keep `bench` a sub-command."""

    runner = CliRunner()
    args = ["bench", "pipeline", "--images", str(faces_dir), "--limit", "2", "--warmup", "0"]
    out = runner.invoke(cli, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["images"] == 2
    assert data["images_per_s"] > 0
    table = runner.invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "images/s" in table.stdout
