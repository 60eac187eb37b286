"""Detection, embedding, the model registry and quality, on real photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.errors import ModelIntegrityError, ModelNotFoundError
from facegate.vision.embed import OnnxDnnEmbedder
from facegate.vision.models import get_embedder
from facegate.vision.pipeline import FacePipeline
from facegate.vision.quality import assess_quality, pose_ratios
from facegate.vision.registry import (
    Normalisation,
    manifest,
    register_onnx_embedder,
    sha256_of,
    weights_path,
)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline("sface")


@pytest.fixture(scope="module")
def powell(faces_root: Path, pipeline: FacePipeline) -> np.ndarray:
    return pipeline.load(faces_root / "Colin_Powell" / "Colin_Powell_0001.jpg")


def test_detects_one_centred_face_with_landmarks(
    pipeline: FacePipeline, powell: np.ndarray
) -> None:
    faces = pipeline.detect(powell)
    assert len(faces) >= 1
    face = faces[0]
    assert 60 < face.center[0] < 190 and 60 < face.center[1] < 190
    right_eye, left_eye, nose, _, _ = face.landmarks
    assert right_eye[0] < nose[0] < left_eye[0]  # eyes either side of the nose
    assert face.quality is not None and face.quality.score > 0.5


def test_embeddings_are_unit_length_and_batch_equals_single(
    pipeline: FacePipeline, two_face_png: Path
) -> None:
    image = pipeline.load(two_face_png)
    faces = pipeline.detect(image)
    assert len(faces) == 2
    batch = pipeline.embedder.embed(image, faces)
    single = np.stack([pipeline.embedder.embed(image, [f])[0] for f in faces])
    assert batch.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_flip_average_stays_close_to_plain(pipeline: FacePipeline, powell: np.ndarray) -> None:
    face = pipeline.detect(powell)[:1]
    plain = get_embedder("sface").embed(powell, face)[0]
    flipped = get_embedder("sface", flip_average=True).embed(powell, face)[0]
    assert 0.8 < float(plain @ flipped) < 0.99999


def test_dlib_embedder(pipeline: FacePipeline, powell: np.ndarray) -> None:
    vector = get_embedder("dlib").embed(powell, pipeline.detect(powell)[:1])
    assert vector.shape == (1, 128)
    assert np.linalg.norm(vector[0]) == pytest.approx(1.0, abs=1e-5)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    original = weights_path(manifest("sface"))
    copy = tmp_path / "sface.onnx"
    shutil.copy(original, copy)
    with copy.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    m = register_onnx_embedder("tampered", copy, sha256_of(original), "Apache-2.0")
    with pytest.raises(ModelIntegrityError):
        weights_path(m)


def test_user_onnx_loads_by_path(
    tmp_path: Path, pipeline: FacePipeline, powell: np.ndarray
) -> None:
    # SFace's own file, registered as a user model with SFace's normalisation, must give
    # the same embeddings as the built-in entry.
    path = tmp_path / "my_arcface.onnx"
    shutil.copy(weights_path(manifest("sface")), path)
    m = register_onnx_embedder(
        "my-arcface", path, sha256_of(path), "Apache-2.0", Normalisation("RGB", 0.0, 1.0)
    )
    # The same backend as the built-in one: OpenCV and onnxruntime agree only to cosine
    # 0.999998 (SFace's int8 last layer runs on int8 arithmetic in onnxruntime).
    custom = OnnxDnnEmbedder(m, backend=pipeline.embedder.backend)  # type: ignore[attr-defined]
    faces = pipeline.detect(powell)[:1]
    np.testing.assert_allclose(
        custom.embed(powell, faces), pipeline.embedder.embed(powell, faces), atol=1e-5
    )


def test_unknown_model_lists_known_ones() -> None:
    with pytest.raises(ModelNotFoundError, match="sface"):
        manifest("no-such-model")


def _degrade(image: np.ndarray, how: str) -> np.ndarray:
    if how == "blurred":
        return cv2.GaussianBlur(image, (0, 0), 3)
    if how == "under-exposed":
        return (image * 0.08).astype(np.uint8)
    if how == "over-exposed":
        return np.clip(image.astype(np.int32) + 200, 0, 255).astype(np.uint8)
    if how == "too small":
        return cv2.resize(image, (50, 50), interpolation=cv2.INTER_AREA)
    return image


@pytest.mark.parametrize("how", ["blurred", "under-exposed", "over-exposed", "too small"])
def test_quality_names_the_problem(pipeline: FacePipeline, powell: np.ndarray, how: str) -> None:
    face = degraded_face = pipeline.detect(powell)[0]
    degraded = _degrade(powell, how)
    if how == "too small":
        scale = 50 / 250
        degraded_face = type(face)(
            bbox=tuple(v * scale for v in face.bbox),  # type: ignore[arg-type]
            landmarks=(face.landmarks * scale).astype(np.float32),
            score=face.score,
        )
    good, bad = assess_quality(powell, face), assess_quality(degraded, degraded_face)
    assert bad.score < good.score
    assert any(r.startswith(how) for r in bad.reasons), bad.reasons


@pytest.mark.parametrize(
    ("landmarks", "yaw_sign"),
    [
        ([[38, 51], [73, 51], [56, 71], [41, 92], [70, 92]], 0),  # the frontal template
        ([[38, 51], [73, 51], [70, 71], [45, 92], [72, 92]], 1),  # nose towards the left eye
        ([[38, 51], [73, 51], [41, 71], [38, 92], [66, 92]], -1),
    ],
)
def test_pose_ratios(landmarks: list[list[float]], yaw_sign: int) -> None:
    yaw, pitch = pose_ratios(np.array(landmarks, dtype=np.float32))
    assert abs(pitch - 0.49) < 0.05
    assert (abs(yaw) < 0.05) if yaw_sign == 0 else (np.sign(yaw) == yaw_sign and abs(yaw) > 0.3)


def test_flip_averaged_embeddings_have_their_own_model_id(tmp_path: Path) -> None:
    from facegate.config import Settings, VisionSettings
    from facegate.errors import ConfigError, ModelMismatchError
    from facegate.gallery.gallery import Gallery
    from facegate.gallery.sqlite_store import SQLiteStore
    from facegate.recognition import FaceMatcher, FaceRecognizer

    assert get_embedder("sface", flip_average=True).model_id == "sface-flip"
    flip = FacePipeline("sface", VisionSettings(flip_average=True))
    with pytest.raises(ConfigError, match="sface-flip"):  # no thresholds calibrated for it
        _ = FaceMatcher(Settings(data_dir=tmp_path), flip).operating_point
    gallery = Gallery.open(SQLiteStore(tmp_path / "g.sqlite3"), create_with_model="sface")
    with pytest.raises(ModelMismatchError):  # never mixed into a plain sface collection
        FaceRecognizer(Settings(data_dir=tmp_path), gallery, flip)


@pytest.mark.parametrize(
    ("model_id", "digest"),
    [
        ("sface", "0" * 64),
        ("fused", "0" * 64),
        ("dlib", "0" * 64),
        ("x-flip", "0" * 64),
        ("ok", "z" * 64),
    ],
)
def test_reserved_ids_and_bad_digests_are_refused(
    tmp_path: Path, model_id: str, digest: str
) -> None:
    from facegate.errors import ModelError

    with pytest.raises(ModelError):
        register_onnx_embedder(model_id, tmp_path / "m.onnx", digest, "MIT")


def test_a_user_model_with_its_own_operating_points_works_end_to_end(
    tmp_path: Path, faces_root: Path
) -> None:
    from facegate.config import Settings, VisionSettings
    from facegate.recognition import FaceMatcher
    from facegate.types import Verdict
    from facegate.vision.calibration import register_calibration

    path = tmp_path / "owner_arcface.onnx"
    shutil.copy(weights_path(manifest("sface")), path)
    register_onnx_embedder(
        "owner-arcface", path, sha256_of(path), "Apache-2.0", Normalisation("RGB", 0.0, 1.0)
    )
    register_calibration("owner-arcface", {"1e-3": 0.36})
    matcher = FaceMatcher(
        Settings(data_dir=tmp_path), FacePipeline("owner-arcface", VisionSettings())
    )
    a = faces_root / "Hugo_Chavez" / "Hugo_Chavez_0001.jpg"
    b = faces_root / "Hugo_Chavez" / "Hugo_Chavez_0002.jpg"
    decision = matcher.compare(a, b)
    assert decision.operating_point.model_id == "owner-arcface"
    assert decision.verdict is Verdict.MATCH
