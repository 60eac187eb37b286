"""dlib's ResNet converted to ONNX (facegate.vision.dlib_onnx) gives dlib's descriptors.

Faces are found by the ordinary pipeline on 40 LFW photos; both backends of DlibEmbedder
cut the same chips with dlib's 5-point shape, so only the forward pass differs (float32
rounding in a different order, the affine layers folded into the convolutions).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facegate.errors import ModelError
from facegate.vision.dlib_onnx import (
    DlibResNetOnnx,
    build_onnx,
    create_dlib_resnet,
    read_dlib_resnet,
    resolve_backend,
)
from facegate.vision.embed import DlibEmbedder
from facegate.vision.registry import manifest, weights_path
from lfw_samples import Sample, central_faces

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

MIN_COSINE = 0.99999


@pytest.fixture(scope="module")
def samples(faces_root: Path) -> list[Sample]:
    """40 LFW photos (one per person) with the central face found by the pipeline."""
    found = central_faces(faces_root, 42)
    assert len(found) >= 40
    return found[:40]


@pytest.fixture(scope="module")
def embedders() -> dict[str, DlibEmbedder]:
    return {b: DlibEmbedder(backend=b) for b in ("dlib", "onnxruntime")}


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    return weights_path(manifest("dlib-resnet")).read_bytes()


@pytest.fixture(scope="module")
def converted(dat_bytes: bytes) -> DlibResNetOnnx:
    net = read_dlib_resnet(dat_bytes)
    return DlibResNetOnnx(net, build_onnx(net))


def test_same_descriptors(embedders: dict[str, DlibEmbedder], samples: list[Sample]) -> None:
    assert embedders["dlib"].backend == "dlib"
    assert embedders["onnxruntime"].backend == "onnxruntime"
    assert embedders["onnxruntime"].model_id == embedders["dlib"].model_id == "dlib"
    worst = 1.0
    for name, image, face in samples:
        a = embedders["dlib"].embed(image, [face])
        b = embedders["onnxruntime"].embed(image, [face])
        assert a.shape == b.shape == (1, 128), name
        cosine = float(a[0] @ b[0])  # both L2-normalised
        assert cosine >= MIN_COSINE, f"{name}: cosine {cosine}"
        worst = min(worst, cosine)
    print(f"\ndlib onnxruntime vs dlib, {len(samples)} faces: worst cosine {worst:.9f}")
    # Several faces in one call: one batch through the converted net.
    faces = [face for _, _, face in samples[:1]] * 3
    a = embedders["dlib"].embed(samples[0][1], faces)
    b = embedders["onnxruntime"].embed(samples[0][1], faces)
    assert float(np.min(np.sum(a * b, axis=1))) >= MIN_COSINE
    for embedder in embedders.values():  # no faces: an empty (0, 128) array from both
        assert embedder.embed(samples[0][1], []).shape == (0, 128)


def test_batches_match_singles(converted: DlibResNetOnnx) -> None:
    rng = np.random.default_rng(7)
    chips = [rng.integers(0, 256, (150, 150, 3), dtype=np.uint8) for _ in range(8)]
    batch = converted.descriptors(chips)
    singles = np.concatenate([converted.descriptors([chip]) for chip in chips])
    assert batch.shape == (8, 128)
    np.testing.assert_allclose(batch, singles, atol=1e-5)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (np.zeros((1, 3, 150, 150), np.float64), "float32"),
        (np.zeros((1, 150, 150, 3), np.float32), r"\(N>=1, 3, 150, 150\)"),
        (np.zeros((3, 150, 150), np.float32), "float32"),
        (np.zeros((0, 3, 150, 150), np.float32), "N>=1"),
        (np.zeros((2, 3, 112, 112), np.float32), "112"),
    ],
    ids=["float64", "nhwc", "3d", "empty", "112px"],
)
def test_forward_refuses_bad_blobs(
    converted: DlibResNetOnnx, blob: NDArray[np.float32], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        converted.forward(blob)


@pytest.mark.parametrize(
    "chips",
    [
        [],
        [np.zeros((150, 150, 3), np.float32)],
        [np.zeros((112, 112, 3), np.uint8)],
        [np.zeros((150, 150), np.uint8)],
        [np.zeros((150, 150, 3), np.uint8), np.zeros((150, 150, 4), np.uint8)],
    ],
    ids=["none", "float-chip", "112px", "gray", "one-bad-of-two"],
)
def test_blob_refuses_bad_chips(converted: DlibResNetOnnx, chips: list[NDArray[np.uint8]]) -> None:
    with pytest.raises(ValueError, match="chip"):
        converted.blob(chips)


def _corruptions(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[0] = 0x7F  # the loss layer's version: a control byte with reserved bits set
    renamed = bytearray(data)
    renamed[4:17] = b"loss_metric_X"
    return {
        "empty": b"",
        "one-byte": data[:1],
        "header-only": data[:300],
        "half": data[: len(data) // 2],
        "last-byte-missing": data[:-1],
        "trailing-bytes": data + b"\x00\x00",
        "bad-control-byte": bytes(flipped),
        "wrong-loss-name": bytes(renamed),
        "random": np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is not a dlib model\n" * 20,
    }


def test_corrupt_files_refused_quickly(dat_bytes: bytes) -> None:
    for name, data in _corruptions(dat_bytes).items():
        start = time.perf_counter()
        with pytest.raises(ModelError, match="dlib model"):
            read_dlib_resnet(data)
        assert time.perf_counter() - start < 5, name


def test_flipped_structure_bytes_refused(dat_bytes: bytes) -> None:
    """A flipped byte in the layer versions, the input layer, the first con's header or
    the fc's trailer: ModelError, or (a training-only value) a net that still builds;
    never another exception. Flipped weights pass here: the manifest's SHA-256 is their
    guard (test_vision's tampered-weights test)."""
    rng = np.random.default_rng(11)
    positions = [*range(0, 260, 5), *range(len(dat_bytes) - 120, len(dat_bytes), 5)]
    refused = 0
    for pos in positions:
        data = bytearray(dat_bytes)
        data[pos] ^= int(rng.integers(1, 256))
        try:
            build_onnx(read_dlib_resnet(bytes(data)))
        except ModelError:
            refused += 1
    assert refused >= len(positions) // 2  # 60 of 76 today; the rest: floats unused here


def test_truncated_file_on_disk_refused(tmp_path: Path, dat_bytes: bytes) -> None:
    path = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    path.write_bytes(dat_bytes[: len(dat_bytes) - 1000])
    with pytest.raises(ModelError, match="truncated"):
        create_dlib_resnet(path)


def test_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("auto") == "onnxruntime"  # onnxruntime and onnx import here
    with monkeypatch.context() as patch:
        patch.setattr("facegate.vision.onnx_repair.onnxruntime_available", lambda: False)
        assert resolve_backend("auto") == "dlib"
    assert resolve_backend("dlib") == "dlib"
    with pytest.raises(ValueError, match="dlib backend"):
        resolve_backend("opencv")
    with pytest.raises(ValueError, match="dlib backend"):
        DlibEmbedder(backend="tensorflow")


def test_speed_one_thread(embedders: dict[str, DlibEmbedder], samples: list[Sample]) -> None:
    """Alternating: ms per face for both backends (printed, not judged beyond a loose
    bound; benchmarks/dlib_backends.py measures it properly on one core)."""
    totals = dict.fromkeys(embedders, 0.0)
    for _, image, face in samples[:10]:
        for backend, embedder in embedders.items():
            start = time.perf_counter()
            embedder.embed(image, [face])
            totals[backend] += time.perf_counter() - start
    ms = {b: 100 * t for b, t in totals.items()}
    print(f"\ndlib ms/face (with chip cutting): dlib {ms['dlib']:.1f}, ort {ms['onnxruntime']:.1f}")
    assert ms["onnxruntime"] < ms["dlib"]
