"""The evaluation layer: metrics on synthetic scores where the answer is known, and the
pairs / identify evaluations on a few real LFW photos (symlinked into temporary trees)."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facegate.eval.calibrate import default_output, threshold_at_fmr
from facegate.eval.embeddings import check_cache_dir, list_images
from facegate.eval.identify import evaluate_identification, split_identities, threshold_at_fpir
from facegate.eval.pairs import (
    best_threshold,
    cross_validated_accuracy,
    equal_error_rate,
    evaluate_pairs,
    read_pairs,
    roc_auc,
    roc_curve,
    tar_at_far,
)
from facegate.vision.models import single_thread

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS_KEYS = {
    "model",
    "n_pairs",
    "accuracy",
    "accuracy_std",
    "auc",
    "eer",
    "tar_at_far",
    "failures",
}
IDENTIFY_KEYS = {"model", "gallery_size", "n_mated", "n_nonmated", "rank1", "fnir_at_fpir"}


@pytest.fixture(scope="module")
def lfw() -> Path:
    faces = SHARED_DATA / "faces"
    if not (faces / "pairs.csv").is_file():
        pytest.skip(f"the LFW photo set is not at {faces} (expected ../shared/data/faces)")
    single_thread()
    return faces


def _link(root: Path, source: Path, rel: str) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(source / rel, target)


def _faceless(path: Path) -> str:
    """A flat grey 250x250 JPEG: no detector finds a face in it, even on retry."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((250, 250, 3), 128, dtype=np.uint8))
    return path.name


# --- synthetic: thresholds and metrics ----------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "same", "expected"),
    [
        # separable: midway between the highest different and the lowest same pair
        ([0.1, 0.2, 0.3, 0.6, 0.7], [0, 0, 0, 1, 1], 0.45),
        # order of the input does not matter
        ([0.7, 0.3, 0.6, 0.1, 0.2], [1, 0, 1, 0, 0], 0.45),
        # two equally good cuts (3 of 4 right): the lower median of the tied cuts
        ([0.1, 0.4, 0.5, 0.9], [0, 1, 0, 1], 0.25),
        # only different pairs: reject everything
        ([0.2, 0.5], [0, 0], 1.5),
        # only same pairs: accept everything
        ([0.2, 0.5], [1, 1], -0.8),
        # negative scores (fused z-scores) work the same way
        ([-3.0, -1.0, 2.0, 4.0], [0, 0, 1, 1], 0.5),
    ],
)
def test_best_threshold(scores: list[float], same: list[int], expected: float) -> None:
    assert best_threshold(np.array(scores), np.array(same, dtype=bool)) == pytest.approx(expected)


def test_cross_validation_trains_on_the_other_folds() -> None:
    # fold 1 is separable (best threshold 0.5); fold 2 has an impostor at 0.7 (its own best
    # cuts tie, the lower median gives 0.45). Fold 1 judged at 0.45: all right. Fold 2
    # judged at 0.5: the impostor at 0.7 is accepted, 3 of 4 right.
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.7, 0.6, 0.95])
    same = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    folds = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    cv = cross_validated_accuracy(scores, same, folds)
    assert cv.folds == (1, 2)
    assert cv.thresholds == pytest.approx((0.45, 0.5))
    assert cv.accuracies == pytest.approx((1.0, 0.75))
    assert cv.accuracy == pytest.approx(0.875)
    assert cv.accuracy_std == pytest.approx(0.125)


@pytest.mark.parametrize(
    ("scores", "same", "auc", "eer"),
    [
        ([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0], 1.0, 0.0),
        ([0.9, 0.6, 0.7, 0.1], [1, 1, 0, 0], 0.75, 0.5),
        ([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0], 0.0, 1.0),
        ([0.5, 0.5, 0.5, 0.5], [1, 1, 0, 0], 0.5, 0.5),
    ],
)
def test_roc_auc_and_eer(scores: list[float], same: list[int], auc: float, eer: float) -> None:
    roc = roc_curve(np.array(scores), np.array(same, dtype=bool))
    assert roc_auc(roc) == pytest.approx(auc)
    assert equal_error_rate(roc) == pytest.approx(eer)


def test_tar_at_far_is_the_largest_tar_within_the_far() -> None:
    same = np.array([1] * 4 + [0] * 10, dtype=bool)
    scores = np.array([0.95, 0.9, 0.5, 0.3] + [0.92] + [0.1] * 9)
    roc = roc_curve(scores, same)
    assert tar_at_far(roc, 0.0) == pytest.approx((0.25, 0.95, 0.0))  # above the impostor 0.92
    assert tar_at_far(roc, 0.1) == pytest.approx((1.0, 0.3, 0.1))  # one impostor of ten allowed


@pytest.mark.parametrize(("rate", "allowed"), [(1e-2, 10), (1e-3, 1), (1e-4, 0)])
def test_fmr_and_fpir_thresholds_admit_at_most_the_allowed_count(rate: float, allowed: int) -> None:
    impostor = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    t = threshold_at_fmr(impostor, rate)
    assert int((impostor >= t).sum()) == allowed
    assert int((impostor >= np.nextafter(np.float32(t), np.float32(-np.inf))).sum()) == allowed + 1
    t_id = threshold_at_fpir(impostor.astype(np.float64), rate)
    assert int((impostor.astype(np.float64) >= t_id).sum()) == allowed


def test_fpir_threshold_ignores_probes_without_a_face() -> None:
    top = np.array([-np.inf, -np.inf, 0.2, 0.4, 0.9, 0.1, 0.3, 0.5, 0.6, 0.7])
    t = threshold_at_fpir(top, 0.1)  # one of ten may pass
    assert 0.7 < t <= 0.9
    assert int((top >= t).sum()) == 1


def test_split_identities_follows_the_contract() -> None:
    paths = ["B/B_0002.jpg", "A/A_0001.jpg", "B/B_0001.jpg", "C/C_0003.jpg", "B/B_0010.jpg"]
    split = split_identities(paths)
    assert split.gallery == ("B/B_0001.jpg",)
    assert split.mated == ("B/B_0002.jpg", "B/B_0010.jpg")
    assert split.mate_of == (0, 0)
    assert split.nonmated == ("A/A_0001.jpg", "C/C_0003.jpg")


def test_cache_refuses_the_project_tree(tmp_path: Path) -> None:
    from facegate.errors import ConfigError

    project = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError, match="must not be inside the project"):
        check_cache_dir(project / ".cache" / "eval")
    assert check_cache_dir(tmp_path) == tmp_path.resolve()


# --- the shipped calibration --------------------------------------------------------------
def test_shipped_calibration_is_complete_and_ordered() -> None:
    path = default_output()
    assert path.is_file(), "run `facegate eval calibrate --root ../shared/data/faces`"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"generated_by", "generated_at", "facegate_version", "dataset", "models"} <= set(data)
    assert {
        "n_images",
        "n_identities",
        "n_genuine",
        "n_impostor",
        "failures",
        "content_digest",
    } <= set(data["dataset"])
    assert data["dataset"]["n_impostor"] > 1_000_000  # FMR 1e-4 needs millions
    models = data["models"]
    assert set(models) >= {"sface", "dlib", "fused"}
    for name in ("sface", "dlib"):
        assert {"impostor_mean", "impostor_std", "genuine_mean", "thresholds", "tar"} <= set(
            models[name]
        )
        assert models[name]["genuine_mean"] > models[name]["impostor_mean"]
        assert models[name]["impostor_std"] > 0
    fusion = models["fused"]["fusion"]
    assert fusion["sface"]["weight"] + fusion["dlib"]["weight"] == pytest.approx(1.0)
    for name in ("sface", "dlib"):
        assert fusion[name]["impostor_mean"] == models[name]["impostor_mean"]
        assert fusion[name]["impostor_std"] == models[name]["impostor_std"]
    for name in ("sface", "dlib", "fused"):
        t = models[name]["thresholds"]
        tar = models[name]["tar"]
        assert set(t) == set(tar) == {"1e-2", "1e-3", "1e-4"}
        assert t["1e-2"] < t["1e-3"] < t["1e-4"], name
        assert 1.0 >= tar["1e-2"] >= tar["1e-3"] >= tar["1e-4"] > 0.0, name


# --- real photos --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_pairs(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """40 real pairs (4 same + 4 different per fold) and one pair with a face-less image,
    under a root that holds only their images."""
    base = tmp_path_factory.mktemp("pairs")
    root = base / "root"
    rows = list(csv.DictReader((lfw / "pairs.csv").open(newline="", encoding="utf-8")))
    chosen = []
    for fold in sorted({r["fold"] for r in rows}):
        in_fold = [r for r in rows if r["fold"] == fold]
        chosen += [r for r in in_fold if r["same"] == "1"][:4]
        chosen += [r for r in in_fold if r["same"] == "0"][:4]
    for row in chosen:
        _link(root, lfw, row["img1"])
        _link(root, lfw, row["img2"])
    blank = "Nobody/" + _faceless(root / "Nobody" / "Nobody_0001.jpg")
    chosen.append({"img1": chosen[0]["img1"], "img2": blank, "same": "0", "fold": "1"})
    pairs_csv = base / "pairs.csv"
    with pairs_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["img1", "img2", "same", "fold"])
        writer.writeheader()
        writer.writerows(chosen)
    yield pairs_csv, root


@pytest.mark.parametrize("model", ["sface", "fused"])
def test_evaluate_pairs_on_real_photos(
    small_pairs: tuple[Path, Path], tmp_path: Path, model: str
) -> None:
    pairs_csv, root = small_pairs
    result = evaluate_pairs(
        pairs_csv, root, model, cache_dir=tmp_path / "cache", plot_dir=tmp_path / "plots"
    )
    assert set(result) >= PAIRS_KEYS
    assert result["model"] == model
    assert result["n_pairs"] == 41
    assert result["accuracy"] > 0.9
    assert 0.0 <= result["accuracy_std"] <= 0.2
    assert 0.9 < result["auc"] <= 1.0
    assert 0.0 <= result["eer"] < 0.2
    assert set(result["tar_at_far"]) == {"1e-2", "1e-3"}
    assert all(0.0 <= v <= 1.0 for v in result["tar_at_far"].values())
    assert result["failures"]["count"] == 1
    assert result["failures"]["images"] == ["Nobody/Nobody_0001.jpg"]
    assert result["failures"]["pairs_affected"] == 1
    assert "lowest possible score" in result["failures"]["handling"]
    assert result["notes"]
    assert sorted(Path(p).name for p in result["plots"]) == ["det.png", "roc.png"]
    assert all(Path(p).stat().st_size > 1000 for p in result["plots"])
    json.dumps(result)  # JSON-able as is

    again = evaluate_pairs(pairs_csv, root, model, cache_dir=tmp_path / "cache")
    assert again["embeddings_from_cache"] is True
    assert again["accuracy"] == result["accuracy"] and again["auc"] == result["auc"]
    assert list((tmp_path / "cache").glob("*.npz"))


def test_retry_detection_returns_faces_in_the_original_pixels(lfw: Path) -> None:
    import cv2

    from facegate.eval.embeddings import RETRY_THRESHOLD, _retry_detect
    from facegate.vision.decode import decode_image
    from facegate.vision.detect import YuNetDetector

    image = decode_image((lfw / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg").read_bytes())
    resized = cv2.resize(image, (125, 125), interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(resized, dtype=np.uint8)
    detector = YuNetDetector(RETRY_THRESHOLD, 0.3, 10, 2560)
    direct = max(detector.detect(small), key=lambda f: f.width)
    retried = max(_retry_detect(detector, small), key=lambda f: f.width)
    # the same face to within a few pixels (not scaled back, it would be off by ~60 px)
    assert np.allclose(retried.bbox, direct.bbox, atol=5.0)
    assert np.allclose(retried.landmarks, direct.landmarks, atol=5.0)


def test_read_pairs_names_the_bad_line(tmp_path: Path) -> None:
    from facegate.errors import ConfigError

    bad = tmp_path / "pairs.csv"
    bad.write_text("img1,img2,same,fold\na.jpg,b.jpg,2,1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pairs.csv:2: same must be 0 or 1"):
        read_pairs(bad)
    bad.write_text("img1,img2,same\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing fold"):
        read_pairs(bad)


def test_evaluate_identification_counts(lfw: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    multi = {"Abel_Pacheco": 4, "Akhmed_Zakayev": 3, "Amber_Tamblyn": 2}
    singles = ["AJ_Cook", "Aaron_Patterson", "Abba_Eban"]
    for person in [*multi, *singles]:
        for image in sorted((lfw / person).iterdir()):
            _link(root, lfw, f"{person}/{image.name}")
    _faceless(root / "Nobody" / "Nobody_0001.jpg")  # a non-mated probe without a face
    assert len(list_images(root)) == 9 + 3 + 1

    result = evaluate_identification(root, "sface", use_cache=False)
    assert set(result) >= IDENTIFY_KEYS
    assert result["model"] == "sface"
    assert result["gallery_size"] == 3
    assert result["n_mated"] == (4 - 1) + (3 - 1) + (2 - 1)
    assert result["n_nonmated"] == 4
    assert set(result["fnir_at_fpir"]) == {"0.01", "0.1"}
    assert all(0.0 <= v <= 1.0 for v in result["fnir_at_fpir"].values())
    assert result["rank1"] == pytest.approx(1.0)  # three well-separated people
    assert result["failures"]["count"] == 1
    assert result["failures"]["nonmated"] == ["Nobody/Nobody_0001.jpg"]
    assert "not a false positive" in result["failures"]["handling"]
    # with 4 non-mated probes, FPIR 0.01 and 0.1 allow none: the face-less one never counts
    assert result["fpir_reached"] == {"0.01": 0.0, "0.1": 0.0}
    assert not math.isnan(result["seconds"])
    json.dumps(result)


def test_cli_pairs_json_stays_clean(small_pairs: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facegate.cli.eval_cmds import app

    pairs_csv, root = small_pairs
    args = [
        "pairs",
        "--pairs",
        str(pairs_csv),
        "--root",
        str(root),
        "--model",
        "sface",
        "--json",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n_pairs"] == 41 and data["model"] == "sface"
