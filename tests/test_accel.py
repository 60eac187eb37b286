"""Device selection (``facegate.vision.accel``) and the graphs the GPU routes run.

CI machines and this project's development machines have no GPU. So the selection tests
replace the availability probes (``cuda_routes``, ``nvidia_device_present``) with fixed
answers, and the GPU routes' graphs (``facegate.vision.gpu_runtime``) are checked by
running those exact graphs in onnxruntime on the CPU, through the same wrappers, batching
and decoding the GPU routes use, against OpenCV's results on real LFW photos. Only the
CUDA kernels themselves are not exercised here: ``benchmarks/gpu_check.py`` measures them
(and the same cosine) on a CUDA machine.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from facegate.config import VisionSettings
from facegate.errors import AcceleratorError
from facegate.stream.tracker import iou as box_iou
from facegate.vision import accel, gpu_runtime, onnx_repair, sface_onnx, yunet_onnx
from facegate.vision.detect import YuNetDetector
from facegate.vision.embed import OnnxDnnEmbedder
from facegate.vision.models import get_detector, get_embedder
from facegate.vision.pipeline import FacePipeline
from facegate.vision.registry import manifest, weights_path
from lfw_samples import Sample, central_faces

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

MIN_COSINE = 0.99999
MIN_IOU = 0.999
MAX_LANDMARK_PX = 0.01
MAX_SCORE_DIFF = 1e-4


# --- route selection ----------------------------------------------------------------
@pytest.fixture()
def routes(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Pretend these CUDA routes are installed (no GPU on CI: the real probes say none)."""

    def install(*found: accel.Route) -> None:
        monkeypatch.setattr(accel, "cuda_routes", lambda: tuple(found))

    return install


@pytest.mark.parametrize(
    ("installed", "device", "expected"),
    [
        ((), "auto", ("cpu",)),
        ((), "cpu", ("cpu",)),
        (("onnxruntime-cuda",), "auto", ("onnxruntime-cuda", "cpu")),
        (("torch-cuda",), "auto", ("torch-cuda", "cpu")),
        (("onnxruntime-cuda", "torch-cuda"), "auto", ("onnxruntime-cuda", "torch-cuda", "cpu")),
        (("onnxruntime-cuda", "torch-cuda"), "cuda", ("onnxruntime-cuda", "torch-cuda")),
        (("torch-cuda",), "cuda", ("torch-cuda",)),
        (("onnxruntime-cuda", "torch-cuda"), "cpu", ("cpu",)),
    ],
)
def test_plan_routes(
    routes: Callable[..., None],
    installed: tuple[accel.Route, ...],
    device: str,
    expected: tuple[accel.Route, ...],
) -> None:
    routes(*installed)
    assert accel.plan_routes(device) == expected
    assert accel.choose_route(device) == expected[0]


def test_cuda_without_a_route_says_what_to_install(routes: Callable[..., None]) -> None:
    routes()
    with pytest.raises(AcceleratorError, match="onnxruntime-gpu") as caught:
        accel.plan_routes("cuda")
    message = str(caught.value)
    assert "onnx2torch" in message and "PyTorch" in message and "vision.device" in message
    assert caught.value.code == "accelerator_unavailable"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        accel.plan_routes("tpu")
    with pytest.raises(ValueError):
        VisionSettings(device="tpu")  # type: ignore[arg-type]
    assert VisionSettings().device == "auto"


def test_this_machine_without_cuda_uses_the_cpu() -> None:
    """The real probes: on a machine with no CUDA route, auto is the CPU and the factories
    give the very same cached models as device="cpu" (same results as today)."""
    accel.cuda_routes.cache_clear()
    if accel.cuda_routes():
        pytest.skip(f"a CUDA route is installed here: {accel.cuda_routes()}")
    assert accel.choose_route("auto") == "cpu"
    # (functools.cache keys on the arguments as written: positional here, as the pipeline.)
    assert get_embedder("sface", False, "opencv", "auto") is get_embedder("sface", False, "opencv")
    detector = get_detector(0.6, 0.3, 20, 1280, "onnxruntime", "auto")
    assert detector is get_detector(0.6, 0.3, 20, 1280, "onnxruntime")
    pipeline = FacePipeline(settings=VisionSettings())
    assert pipeline.settings.device == "auto"
    assert pipeline.embedder.route == "cpu"  # type: ignore[attr-defined]
    assert pipeline.detector.route == "cpu"
    with pytest.raises(AcceleratorError):
        OnnxDnnEmbedder(manifest("sface"), device="cuda")
    with pytest.raises(AcceleratorError):
        YuNetDetector(device="cuda")


class _ExplodingTorch(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``torch``/``onnx2torch`` look installed; importing either fails the test."""

    names = ("torch", "onnx2torch")

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.names:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        raise AssertionError(f"{spec.name} was imported")

    def exec_module(self, module: ModuleType) -> None:
        raise AssertionError(f"{module.__name__} was imported")


@pytest.fixture()
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _ExplodingTorch.names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    finder = _ExplodingTorch()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def test_auto_never_imports_torch_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch absent (a None entry in sys.modules is how Python spells "not importable"):
    no import is tried, no error, CPU."""
    for name in ("torch", "onnx2torch"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(accel, "onnxruntime_cuda_available", lambda: False)
    accel.cuda_routes.cache_clear()
    try:
        assert accel.torch_cuda_available() is False
        assert accel.plan_routes("auto") == ("cpu",)
    finally:
        accel.cuda_routes.cache_clear()


def test_installed_torch_is_not_imported_without_an_nvidia_device(
    monkeypatch: pytest.MonkeyPatch, fake_torch: None
) -> None:
    """torch and onnx2torch installed but no NVIDIA driver: ``import torch`` (seconds) is
    skipped. No GPU here, so the device probe is fixed to False."""
    monkeypatch.setattr(accel, "nvidia_device_present", lambda: False)
    monkeypatch.setattr(accel, "onnxruntime_cuda_available", lambda: False)
    accel.cuda_routes.cache_clear()
    try:
        assert accel.torch_cuda_available() is False
        assert accel.choose_route("auto") == "cpu"
        assert "torch" not in sys.modules
    finally:
        accel.cuda_routes.cache_clear()


def test_a_route_that_fails_to_open_falls_back(
    routes: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime-gpu offering CUDA but unable to start it (here: the real CPU-only
    onnxruntime, which drops the provider): auto logs it and runs on the CPU with the same
    results; cuda refuses with the reason."""
    routes("onnxruntime-cuda")
    m = manifest("sface")
    with caplog.at_level(logging.INFO, logger="facegate.vision.accel"):
        embedder = OnnxDnnEmbedder(m, device="auto")
    assert embedder.route == "cpu" and embedder.backend == "opencv"
    assert "onnxruntime-cuda route failed" in caplog.text
    assert "runs on the CPU" in caplog.text
    with pytest.raises(AcceleratorError, match="did not start its CUDA provider"):
        OnnxDnnEmbedder(m, device="cuda")
    assert YuNetDetector(device="auto").route == "cpu"


# --- the GPU routes' graphs, run on the CPU -------------------------------------------
def _cpu_session(model: Any) -> gpu_runtime.DeviceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    session.device_name = "cpu (test)"  # type: ignore[attr-defined]
    return session  # type: ignore[no-any-return]


GRAPHS: dict[str, Callable[[Path, Any, Any], gpu_runtime.DeviceSession]] = {
    # onnxruntime-cuda runs the float graph; torch-cuda converts the optimised opset-17 one.
    "onnxruntime-cuda": lambda p, i, o: _cpu_session(gpu_runtime.float_graph(p, i, o)),
    "torch-cuda": lambda p, i, o: _cpu_session(gpu_runtime.torch_graph(p, i, o)),
}


@pytest.fixture()
def gpu_graph_on_cpu(
    routes: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> Callable[[accel.Route], None]:
    """Make ``route`` the chosen CUDA route, opened as its real graph on the CPU."""

    def use(route: accel.Route) -> None:
        routes(route)

        def open_cuda_session(
            chosen: accel.Route, path: Path, input_dims: Any, output_dims: Any
        ) -> gpu_runtime.DeviceSession:
            assert chosen == route
            return GRAPHS[route](path, input_dims, output_dims)

        monkeypatch.setattr(gpu_runtime, "open_cuda_session", open_cuda_session)

    return use


@pytest.fixture(scope="module")
def samples(faces_root: Path) -> list[Sample]:
    """30 LFW photos (one per person) with the central face found by the pipeline."""
    found = central_faces(faces_root, 30, start=7, step=90, device="cpu")
    assert len(found) >= 28
    return found


def _crops_blob(samples: list[Sample]) -> NDArray[np.float32]:
    from facegate.vision.align import align_face

    crops = [align_face(image, face.landmarks) for _, image, face in samples]
    blob = cv2.dnn.blobFromImages(crops, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False)
    return np.asarray(blob, dtype=np.float32)


def test_prelu_rewrite_matches_onnxruntimes_prelu(samples: list[Sample]) -> None:
    """The CPU sessions' rewrite: the numbers of onnxruntime's own PRelu within float
    rounding (per-channel slopes become BatchNormalization: x + (1 - a) * Relu(-x)), and
    the same embeddings to 1e-6 in cosine."""
    import onnx

    path = weights_path(manifest("sface"))
    repaired = onnx_repair.repair_model(
        onnx.load(str(path)), sface_onnx.INPUT_DIMS, sface_onnx.OUTPUT_DIMS
    )
    rewritten = onnx_repair.rewrite_prelu(repaired)
    assert sum(n.op_type == "PRelu" for n in repaired.graph.node) == 27
    assert not any(n.op_type == "PRelu" for n in rewritten.graph.node)
    assert sum(n.op_type == "BatchNormalization" for n in rewritten.graph.node) == 29 + 2 * 27
    blob = _crops_blob(samples)
    a = _cpu_session(repaired).run(None, {"data": blob})[0]
    b = _cpu_session(rewritten).run(None, {"data": blob})[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 1 - 1e-6


def test_prelu_rewrite_of_a_shared_slope_is_bit_identical() -> None:
    """A scalar slope (no channels to carry) takes the Relu(x) - a * Relu(-x) form."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "a"], ["y"])],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 4])],
        [numpy_helper.from_array(np.array([0.25], np.float32), "a")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    rewritten = onnx_repair.rewrite_prelu(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Relu", "Neg", "Relu", "Mul", "Sub"]
    x = np.random.default_rng(3).normal(size=(2, 3, 4, 4)).astype(np.float32)
    a = _cpu_session(model).run(None, {"x": x})[0]
    b = _cpu_session(rewritten).run(None, {"x": x})[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model_id", ["sface", "yunet"])
def test_gpu_graphs_are_plain_float(model_id: str) -> None:
    dims = {
        "sface": (sface_onnx.INPUT_DIMS, sface_onnx.OUTPUT_DIMS),
        "yunet": (yunet_onnx.INPUT_DIMS, yunet_onnx.OUTPUT_DIMS),
    }[model_id]
    path = weights_path(manifest(model_id))
    flat = gpu_runtime.float_graph(path, *dims)
    assert not any(n.op_type == "DequantizeLinear" for n in flat.graph.node)
    assert all(t.data_type == 1 for t in flat.graph.initializer if len(t.dims) > 1)  # float32
    converted = gpu_runtime.torch_graph(path, *dims)
    assert [(o.domain, o.version) for o in converted.opset_import] == [("", 17)]
    assert {n.domain for n in converted.graph.node} <= {""}
    # Constants folded: no weight reshapes left; batch norms fused into the convolutions.
    ops = [n.op_type for n in converted.graph.node]
    assert ops.count("Conv") == sum(n.op_type == "Conv" for n in flat.graph.node)
    assert ops.count("Reshape") < sum(n.op_type == "Reshape" for n in flat.graph.node)


@pytest.mark.parametrize("route", ["onnxruntime-cuda", "torch-cuda"])
@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip"])
def test_gpu_graph_embeddings_match_the_cpu(
    route: accel.Route,
    flip: bool,
    samples: list[Sample],
    gpu_graph_on_cpu: Callable[[accel.Route], None],
) -> None:
    """Through OnnxDnnEmbedder's GPU path (route choice, batches of at most 7): the same
    embeddings as OpenCV's DNN, face by face and in one batch of all faces."""
    m = manifest("sface")
    reference = OnnxDnnEmbedder(m, flip, backend="opencv")
    gpu_graph_on_cpu(route)
    embedder = OnnxDnnEmbedder(m, flip, device="cuda", max_batch=7)
    assert embedder.route == route
    assert (embedder.model_id, embedder.dim) == (reference.model_id, 128)
    worst = 1.0
    for name, image, face in samples:
        cosine = float(embedder.embed(image, [face])[0] @ reference.embed(image, [face])[0])
        assert cosine >= MIN_COSINE, f"{name}: cosine {cosine}"
        worst = min(worst, cosine)
    _, image, face = samples[0]
    many = [face] * 17  # 3 batches of at most 7 (34 crops with flip: 5 batches)
    batched = embedder.embed(image, many)
    assert batched.shape == (17, 128)
    assert float(np.min(batched @ reference.embed(image, [face])[0])) >= MIN_COSINE
    print(f"\n{route} graph on CPU, sface {'flip' if flip else 'plain'}: worst cos {worst:.9f}")


@pytest.mark.parametrize("route", ["onnxruntime-cuda", "torch-cuda"])
def test_gpu_graph_detections_match_the_cpu(
    route: accel.Route,
    samples: list[Sample],
    data_root: Path,
    gpu_graph_on_cpu: Callable[[accel.Route], None],
) -> None:
    """YuNetDetector's GPU path: the same faces as OpenCV's FaceDetectorYN on LFW photos
    and a 1080p crowd frame (downscaled to 1280, many faces)."""
    capture = cv2.VideoCapture(str(data_root / "video" / "crowd_walking_1080p.mp4"))
    ok, crowd = capture.read()
    capture.release()
    assert ok
    images = [(name, image) for name, image, _ in samples[:12]] + [("crowd#0", crowd)]
    reference = YuNetDetector(0.5, 0.3, 1, 1280, backend="opencv")
    gpu_graph_on_cpu(route)
    detector = YuNetDetector(0.5, 0.3, 1, 1280, device="auto")
    assert detector.route == route
    total = 0
    for name, image in images:
        expected, got = reference.detect(image), detector.detect(image)
        assert len(got) == len(expected), name
        left = list(got)
        for face in expected:
            match = max(left, key=lambda f: box_iou(face.bbox, f.bbox))
            left.remove(match)
            assert box_iou(face.bbox, match.bbox) >= MIN_IOU, name
            assert float(np.abs(face.landmarks - match.landmarks).max()) <= MAX_LANDMARK_PX
            assert abs(face.score - match.score) <= MAX_SCORE_DIFF, name
        total += len(expected)
    assert total >= len(images) + 5  # faces were found, the crowd frame has several


def test_max_batch_is_checked() -> None:
    session = _cpu_session(
        gpu_runtime.float_graph(
            weights_path(manifest("sface")), sface_onnx.INPUT_DIMS, sface_onnx.OUTPUT_DIMS
        )
    )
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        sface_onnx.SFaceOnnx(session, max_batch=0)


# --- the PyTorch route, converted and run on the CPU ----------------------------------
@pytest.fixture(scope="module")
def torch_cpu() -> Any:
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed (optional: the torch-cuda route only)"
    )
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed (torch-cuda route)")
    return torch


def test_torch_module_matches_opencv(torch_cpu: Any, samples: list[Sample]) -> None:
    """The onnx2torch conversion itself (what torch-cuda puts on the GPU), run on the CPU."""
    m = manifest("sface")
    session = gpu_runtime.open_torch(
        weights_path(m), sface_onnx.INPUT_DIMS, sface_onnx.OUTPUT_DIMS, device="cpu"
    )
    reference = OnnxDnnEmbedder(m, backend="opencv")
    got = sface_onnx.SFaceOnnx(session, max_batch=8).forward(_crops_blob(samples))
    got /= np.linalg.norm(got, axis=1, keepdims=True)
    for (name, image, face), vector in zip(samples, got, strict=True):
        cosine = float(vector @ reference.embed(image, [face])[0])
        assert cosine >= MIN_COSINE, f"{name}: cosine {cosine}"
    detector = gpu_runtime.open_torch(
        weights_path(manifest("yunet")), yunet_onnx.INPUT_DIMS, yunet_onnx.OUTPUT_DIMS, "cpu"
    )
    yunet = yunet_onnx.YuNetOnnx(detector, 0.6, 0.3, 5000)
    opencv = YuNetDetector(backend="opencv")
    for name, image, _ in samples[:8]:
        rows = yunet.detect(image)
        assert len(rows) == len(opencv.detect(image)), name
