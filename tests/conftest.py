"""Shared fixtures. Real photos come from ../shared/data, a sibling of the checkout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "faces" / "pairs.csv").is_file():
        pytest.skip(f"the shared photo set is not at {DATA_ROOT}; these tests need real faces")
    return DATA_ROOT


@pytest.fixture(scope="session")
def faces_root(data_root: Path) -> Path:
    return data_root / "faces"


@pytest.fixture(scope="session")
def two_face_png(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Path:
    """Two real people side by side in one photo."""
    import cv2

    left = cv2.imread(str(faces_root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"))
    right = cv2.imread(str(faces_root / "Akhmed_Zakayev" / "Akhmed_Zakayev_0001.jpg"))
    path = tmp_path_factory.mktemp("two") / "two_faces.png"
    assert left is not None and right is not None
    cv2.imwrite(str(path), np.hstack([left, right]))
    return path


@pytest.fixture(scope="session")
def faceless_jpg(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A real photo with no face in it: the arcade roof of the first crowd-clip frame."""
    import cv2

    capture = cv2.VideoCapture(str(data_root / "video" / "crowd_walking_1080p.mp4"))
    ok, frame = capture.read()
    capture.release()
    assert ok, "could not read the crowd clip"
    path = tmp_path_factory.mktemp("faceless") / "roof.jpg"
    cv2.imwrite(str(path), frame[0:300, 0:600])
    return path
