"""SFace (or any ArcFace-style 112x112 ONNX embedder) through onnxruntime, with the same
embeddings as OpenCV's DNN.

The int8 file is repaired in memory by ``facegate.vision.onnx_repair`` (SFace's last
Gemm has real 64-wide quantisation blocks, dequantised there to float32 exactly as OpenCV
does at load) and run on one thread with ``session.disable_quant_qdq=1``. The caller
builds the same ``cv2.dnn.blobFromImages`` blob for both backends; only the forward pass
differs. Nothing loads at import: call :func:`create_sface`.

The same class runs the GPU sessions of ``facegate.vision.gpu_runtime`` (any object with
``InferenceSession``'s ``get_inputs``/``get_outputs``/``run``), in batches of at most
``max_batch`` faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from facegate.vision import onnx_repair

if TYPE_CHECKING:
    from facegate.vision.gpu_runtime import RunSession

Backend = Literal["opencv", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("opencv", "onnxruntime")
INPUT_DIMS = ("batch", None, None, None)
OUTPUT_DIMS = ("batch", None)


def resolve_backend(setting: str) -> Backend:
    """``auto`` is onnxruntime when it (and ``onnx``) can be imported, else OpenCV."""
    if setting == "auto":
        return "onnxruntime" if onnx_repair.onnxruntime_available() else "opencv"
    if setting not in BACKENDS:
        raise ValueError(f"unknown embedder backend {setting!r}; use auto, opencv or onnxruntime")
    return setting


class SFaceOnnx:
    """The forward pass of an embedder on onnxruntime (or a GPU session): ``(N, 3, H, W)``
    float32 blob in, ``(N, D)`` float32 (not normalised) out, run in batches of at most
    ``max_batch`` (None: all at once). Session runs are thread-safe: no lock."""

    def __init__(self, session: RunSession, max_batch: int | None = None) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1 or None, got {max_batch}")
        self._session = session
        self.max_batch = max_batch
        self.input_name = str(session.get_inputs()[0].name)
        self._output = str(session.get_outputs()[0].name)

    def forward(self, blob: NDArray[Any]) -> NDArray[np.float32]:
        blob = np.asarray(blob)
        if blob.dtype != np.float32 or blob.ndim != 4:
            raise ValueError(f"blob must be (N, C, H, W) float32, got {blob.dtype} {blob.shape}")
        step = self.max_batch
        if step is None or blob.shape[0] <= step:
            return self._run(blob)
        return np.concatenate([self._run(blob[i : i + step]) for i in range(0, len(blob), step)])

    def _run(self, blob: NDArray[np.float32]) -> NDArray[np.float32]:
        (out,) = self._session.run([self._output], {self.input_name: blob})
        return np.asarray(out, dtype=np.float32).reshape(blob.shape[0], -1)


# On one CPU thread onnxruntime gets slower per face as a batch grows (measured with SFace:
# 73.7 faces/s at batch 1, 67.5 at 32, 44.5 at 256): big batches run in chunks of this.
CPU_MAX_BATCH = 8


def create_sface(path: Path) -> SFaceOnnx:
    """Load, repair and open the embedder at ``path`` on one CPU thread (the file is read,
    never written)."""
    session = onnx_repair.create_session(path, INPUT_DIMS, OUTPUT_DIMS)
    return SFaceOnnx(session, max_batch=CPU_MAX_BATCH)
