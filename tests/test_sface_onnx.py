"""The onnxruntime SFace backend gives the same embeddings as OpenCV's DNN.

Faces are found and aligned by the ordinary pipeline on 40 LFW photos; both backends get
the same blob, so only the forward pass differs (float32 rounding in a different order).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.config import VisionSettings
from facegate.vision.embed import OnnxDnnEmbedder
from facegate.vision.models import get_embedder
from facegate.vision.pipeline import FacePipeline
from facegate.vision.registry import manifest
from facegate.vision.sface_onnx import resolve_backend
from lfw_samples import Sample, central_faces

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def samples(faces_root: Path) -> list[Sample]:
    """40 LFW photos (one per person) with the central face found by the pipeline."""
    found = central_faces(faces_root, 40)
    assert len(found) >= 38
    return found[:40]


def _embedders(flip: bool) -> dict[str, OnnxDnnEmbedder]:
    m = manifest("sface")
    return {b: OnnxDnnEmbedder(m, flip, backend=b) for b in ("opencv", "onnxruntime")}


def _worst_cosine(embedders: dict[str, OnnxDnnEmbedder], samples: list[Sample]) -> float:
    worst = 1.0
    for name, image, face in samples:
        a = embedders["opencv"].embed(image, [face])
        b = embedders["onnxruntime"].embed(image, [face])
        assert a.shape == b.shape == (1, 128), name
        cosine = float(a[0] @ b[0])  # both L2-normalised
        assert cosine >= MIN_COSINE, f"{name}: cosine {cosine}"
        worst = min(worst, cosine)
    # One batch of all faces in one image: the batch dimension is dynamic too.
    name, image, face = samples[0]
    faces = [face, face, face]
    a = embedders["opencv"].embed(image, faces)
    b = embedders["onnxruntime"].embed(image, faces)
    assert float(np.min(np.sum(a * b, axis=1))) >= MIN_COSINE
    return worst


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_same_embeddings(flip: bool, samples: list[Sample]) -> None:
    embedders = _embedders(flip)
    assert embedders["onnxruntime"].model_id == embedders["opencv"].model_id
    assert embedders["onnxruntime"].dim == embedders["opencv"].dim == 128
    worst = _worst_cosine(embedders, samples)
    print(f"\nsface {'flip' if flip else 'plain'}: worst cosine {worst:.9f}")


def test_bad_input_refused_alike(samples: list[Sample]) -> None:
    embedders = _embedders(False)
    _, image, face = samples[0]
    bad_inputs = [
        (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), [face]),  # not 3 channels
        (image[:, :, :2].copy(), [face]),  # 2 channels
        (np.zeros((0, 0, 3), np.uint8), [face]),  # empty
    ]
    for bad, faces in bad_inputs:
        outcomes = []
        for embedder in embedders.values():
            try:
                outcomes.append(("ok", embedder.embed(bad, faces)))
            except Exception as exc:  # the exception type is what is compared
                outcomes.append(("error", type(exc)))
        (kind_a, a), (kind_b, b) = outcomes
        assert kind_a == kind_b, f"{bad.shape}: {outcomes}"
        if kind_a == "error":
            assert a is b
        else:
            np.testing.assert_allclose(a, b, atol=1e-4)
    for embedder in embedders.values():  # no faces: an empty (0, 128) array from both
        assert embedder.embed(image, []).shape == (0, 128)
    with pytest.raises(ValueError, match="embedder backend"):
        resolve_backend("tensorflow")


def test_settings_select_backend() -> None:
    assert VisionSettings().embedder_backend == "auto"  # onnxruntime: it is installed
    embedder = get_embedder("sface", False, "onnxruntime")
    assert isinstance(embedder, OnnxDnnEmbedder) and embedder.backend == "onnxruntime"
    assert get_embedder("sface").backend == "opencv"  # type: ignore[attr-defined]
    pipeline = FacePipeline(settings=VisionSettings(embedder_backend="onnxruntime"))
    assert pipeline.embedder is embedder
    assert FacePipeline().embedder.backend == "onnxruntime"  # type: ignore[attr-defined]


def test_speed_one_thread(samples: list[Sample]) -> None:
    """Alternating, one thread each: ms per face for both backends (printed, not judged
    beyond a loose sanity bound)."""
    cv2.setNumThreads(1)
    embedders = _embedders(False)
    totals = {b: 0.0 for b in embedders}
    rounds = 3
    for _ in range(rounds):
        for _, image, face in samples:
            for backend, embedder in embedders.items():
                start = time.perf_counter()
                embedder.embed(image, [face])
                totals[backend] += time.perf_counter() - start
    ms = {b: 1000 * t / (rounds * len(samples)) for b, t in totals.items()}
    print(f"\nsface ms/face, one thread: opencv {ms['opencv']:.2f}, ort {ms['onnxruntime']:.2f}")
    assert ms["onnxruntime"] < 10 * ms["opencv"]
