"""The onnxruntime YuNet backend finds the same faces as OpenCV's FaceDetectorYN.

Measured on these images (LFW 250x250, the Hamilton clip, a 1080p crowd frame): the worst
differences were 1e-4 px on boxes and landmarks and 5e-7 on scores; the bounds below leave
a margin of about 100x over that, far tighter than anything downstream can notice.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.stream.tracker import iou as box_iou
from facegate.types import Face
from facegate.vision.detect import YuNetDetector, resolve_backend
from facegate.vision.registry import manifest, sha256_of, weights_path

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

MIN_IOU = 0.999
MAX_LANDMARK_PX = 0.01
MAX_SCORE_DIFF = 1e-4
VIDEO_FRAMES = (0, 50, 100, 150, 200, 250)


def _frames(path: Path, indices: tuple[int, ...]) -> list[NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(path))
    frames, index = [], 0
    try:
        while index <= max(indices):
            ok, frame = capture.read()
            assert ok, f"{path.name}: no frame {index}"
            if index in indices:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    return frames


@pytest.fixture(scope="module")
def detectors() -> dict[str, YuNetDetector]:
    return {b: YuNetDetector(backend=b) for b in ("opencv", "onnxruntime")}


@pytest.fixture(scope="module")
def images(faces_root: Path) -> list[tuple[str, NDArray[np.uint8]]]:
    """64 LFW photos (one per person, 250x250: not a multiple of 32, so padded), six
    frames of the Hamilton clip and the first 1080p crowd frame."""
    people = sorted(p for p in faces_root.iterdir() if p.is_dir())[::40][:64]
    found: list[tuple[str, NDArray[np.uint8]]] = []
    for person in people:
        path = sorted(person.glob("*.jpg"))[0]
        image = cv2.imread(str(path))
        assert image is not None, path
        found.append((path.name, image))
    assert len(found) >= 60
    video = faces_root.parent / "video"
    for index, frame in zip(
        VIDEO_FRAMES, _frames(video / "short_hamilton_clip.mp4", VIDEO_FRAMES), strict=True
    ):
        found.append((f"hamilton#{index}", frame))
    (crowd,) = _frames(video / "crowd_walking_1080p.mp4", (0,))
    assert crowd.shape[:2] == (1080, 1920)
    found.append(("crowd#0", crowd))
    return found


def _assert_same(name: str, expected: list[Face], got: list[Face]) -> tuple[float, float, float]:
    """The same faces (matched greedily by IoU); returns the worst IoU, landmark and score
    differences."""
    assert len(got) == len(expected), f"{name}: {len(expected)} faces by OpenCV, {len(got)}"
    worst_iou, worst_px, worst_score = 1.0, 0.0, 0.0
    left = list(got)
    for face in expected:
        match = max(left, key=lambda f: box_iou(face.bbox, f.bbox))
        left.remove(match)
        iou = box_iou(face.bbox, match.bbox)
        px = float(np.abs(face.landmarks - match.landmarks).max())
        score = abs(face.score - match.score)
        assert iou >= MIN_IOU, f"{name}: IoU {iou}"
        assert px <= MAX_LANDMARK_PX, f"{name}: landmarks {px} px apart"
        assert score <= MAX_SCORE_DIFF, f"{name}: scores {face.score} vs {match.score}"
        worst_iou, worst_px = min(worst_iou, iou), max(worst_px, px)
        worst_score = max(worst_score, score)
    return worst_iou, worst_px, worst_score


def test_same_faces_as_opencv(
    detectors: dict[str, YuNetDetector], images: list[tuple[str, NDArray[np.uint8]]]
) -> None:
    total = 0
    for name, image in images:
        expected = detectors["opencv"].detect(image)
        _assert_same(name, expected, detectors["onnxruntime"].detect(image))
        total += len(expected)
    assert total >= len(images)  # the comparison is not vacuous: faces were found


def test_same_faces_at_stream_size(images: list[tuple[str, NDArray[np.uint8]]]) -> None:
    """Video frames at the stream's detection size (640 px longer side), lower threshold:
    more candidates, so NMS and top-k do real work."""
    opencv = YuNetDetector(0.3, 0.3, 1, 640, backend="opencv")
    onnx = YuNetDetector(0.3, 0.3, 1, 640, backend="onnxruntime")
    for name, image in images:
        if "#" in name:
            _assert_same(name, opencv.detect(image), onnx.detect(image))


def test_raw_rows_match_face_detector_yn(
    detectors: dict[str, YuNetDetector], images: list[tuple[str, NDArray[np.uint8]]]
) -> None:
    """Row for row (same NMS order), before the detector's clipping and sorting."""
    path = weights_path(manifest("yunet"))
    reference = cv2.FaceDetectorYN.create(str(path), "", (320, 320), 0.6, 0.3, 5000)
    onnx = detectors["onnxruntime"]._onnx
    for name, image in images[:10] + images[-7:-1]:
        reference.setInputSize((image.shape[1], image.shape[0]))
        _, rows = reference.detect(image)
        expected = np.zeros((0, 15), np.float32) if rows is None else rows
        got = onnx.detect(image)
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got[:, :14], expected[:, :14], atol=MAX_LANDMARK_PX)
        np.testing.assert_allclose(got[:, 14], expected[:, 14], atol=MAX_SCORE_DIFF)


def test_weights_file_is_never_modified() -> None:
    found = manifest("yunet")
    path = weights_path(found)
    before = path.stat().st_mtime_ns
    detector = YuNetDetector(backend="onnxruntime")
    detector.detect(np.zeros((48, 64, 3), np.uint8))
    assert sha256_of(path) == found.sha256
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((40, 40), np.uint8),
        np.zeros((40, 40, 4), np.uint8),
        np.zeros((40, 40, 1), np.uint8),
        np.zeros((2, 40, 40, 3), np.uint8),
    ],
    ids=["gray", "bgra", "one-channel", "batch"],
)
def test_bad_input_refused_alike(detectors: dict[str, YuNetDetector], image: NDArray) -> None:
    messages = []
    for detector in detectors.values():
        with pytest.raises(ValueError, match="must be") as caught:
            detector.detect(image)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_no_face_and_empty_rows_alike(detectors: dict[str, YuNetDetector]) -> None:
    for image in (np.zeros((0, 10, 3), np.uint8), np.full((7, 300, 3), 128, np.uint8)):
        assert detectors["opencv"].detect(image) == detectors["onnxruntime"].detect(image) == []


def test_backend_setting() -> None:
    assert VisionSettings().detector_backend == "auto"  # onnxruntime is a dependency
    assert resolve_backend("auto") == "onnxruntime"  # importable here (skipped otherwise)
    assert resolve_backend("opencv") == "opencv"
    assert YuNetDetector().backend == "opencv"
    with pytest.raises(ValueError, match="unknown detector backend"):
        YuNetDetector(backend="tensorrt")
    with pytest.raises(ValueError):
        VisionSettings(detector_backend="tensorrt")  # type: ignore[arg-type]
