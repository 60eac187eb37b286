"""``embed_many``: faces cut from several images embedded in one batch give the same
vectors as one image at a time (the camera worker embeds a window's shots this way)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facegate.types import Face
from facegate.vision.models import get_embedder
from facegate.vision.pipeline import FacePipeline, central_face

Shot = tuple[NDArray[np.uint8], Face]


@pytest.fixture(scope="module")
def shots(faces_root: Path) -> list[Shot]:
    """The central face of the first photo of 6 LFW people, each in its own image."""
    pipeline = FacePipeline()
    found: list[Shot] = []
    for person in sorted(p for p in faces_root.iterdir() if p.is_dir())[::300]:
        image = pipeline.load(sorted(person.glob("*.jpg"))[0])
        face = central_face(pipeline.detect(image), image.shape[1], image.shape[0])
        if face is not None:
            found.append((image, face))
        if len(found) == 6:
            break
    assert len(found) == 6
    return found


@pytest.mark.parametrize("model_id", ["sface", "dlib", "fused"])
def test_one_batch_of_several_images_equals_one_image_at_a_time(
    shots: list[Shot], model_id: str
) -> None:
    embedder = get_embedder(model_id, False, "auto")
    batched = embedder.embed_many(shots)
    alone = np.concatenate([embedder.embed(image, [face]) for image, face in shots])
    assert batched.shape == (6, embedder.dim)
    np.testing.assert_allclose(batched, alone, atol=2e-5)
    # The same image twice in a batch (two faces of one frame) is no special case.
    image, face = shots[0]
    twice = embedder.embed_many([(image, face), (image, face)])
    np.testing.assert_allclose(twice[0], twice[1], atol=2e-5)


def test_no_shots_and_bad_images(shots: list[Shot]) -> None:
    embedder = get_embedder("sface", False, "auto")
    assert embedder.embed_many([]).shape == (0, embedder.dim)
    grey = np.zeros((120, 120), np.uint8)
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\) BGR"):
        embedder.embed_many([shots[0], (grey, shots[1][1])])
