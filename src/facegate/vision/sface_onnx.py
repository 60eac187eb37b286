"""SFace (or any ArcFace-style 112x112 ONNX embedder) through onnxruntime, with the same
embeddings as OpenCV's DNN.

The int8 file is repaired in memory by ``facegate.vision.onnx_repair`` (SFace's last
Gemm has real 64-wide quantisation blocks, dequantised there to float32 exactly as OpenCV
does at load) and run on one thread with ``session.disable_quant_qdq=1``. The caller
builds the same ``cv2.dnn.blobFromImages`` blob for both backends; only the forward pass
differs. Nothing loads at import: call :func:`create_sface`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from facegate.vision import onnx_repair

if TYPE_CHECKING:
    import onnxruntime

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
    """The forward pass of an embedder on onnxruntime: ``(N, 3, H, W)`` float32 blob in,
    ``(N, D)`` float32 (not normalised) out. Session runs are thread-safe: no lock."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self.input_name = str(session.get_inputs()[0].name)
        self._output = str(session.get_outputs()[0].name)

    def forward(self, blob: NDArray[Any]) -> NDArray[np.float32]:
        blob = np.asarray(blob)
        if blob.dtype != np.float32 or blob.ndim != 4:
            raise ValueError(f"blob must be (N, C, H, W) float32, got {blob.dtype} {blob.shape}")
        (out,) = self._session.run([self._output], {self.input_name: blob})
        return np.asarray(out, dtype=np.float32).reshape(blob.shape[0], -1)


def create_sface(path: Path) -> SFaceOnnx:
    """Load, repair and open the embedder at ``path`` (the file is read, never written)."""
    return SFaceOnnx(onnx_repair.create_session(path, INPUT_DIMS, OUTPUT_DIMS))
