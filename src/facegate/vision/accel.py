"""Where detection and embedding run: the CPU, or a CUDA GPU through one of two routes.

``vision.device`` chooses:

- ``cpu``: today's paths (OpenCV's DNN or onnxruntime on one CPU thread), nothing else is
  looked at.
- ``auto`` (the default): the first CUDA route that is installed and finds a device, else
  the CPU. A GPU is never required: a route that fails to open is logged and the next one
  (finally the CPU) is used.
- ``cuda``: a CUDA route or a :class:`AcceleratorError` that says what to install.

The CUDA routes, in order of preference:

1. ``onnxruntime-cuda``: the ``onnxruntime-gpu`` package, whose providers include
   ``CUDAExecutionProvider``.
2. ``torch-cuda``: PyTorch with CUDA plus ``onnx2torch``; the graph is converted to a
   PyTorch module (``facegate.vision.gpu_runtime``).

``torch`` costs seconds to import, so it is imported only when both packages are installed,
onnxruntime has no CUDA provider, and (on Linux) an NVIDIA device node exists; it is never
needed. Nothing is probed at import time; results are cached per process.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from facegate.errors import AcceleratorError

if TYPE_CHECKING:
    from facegate.vision.gpu_runtime import DeviceSession
    from facegate.vision.onnx_repair import DimNames

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
Route = Literal["cpu", "onnxruntime-cuda", "torch-cuda"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")
CUDA_ROUTES: tuple[Route, ...] = ("onnxruntime-cuda", "torch-cuda")

INSTALL_HINT = (
    "install onnxruntime-gpu (in place of onnxruntime, with a CUDA runtime and cuDNN it "
    "supports), or PyTorch with CUDA plus onnx2torch (pip install onnx2torch); or set "
    "vision.device to auto or cpu"
)
# Device nodes the NVIDIA driver creates on Linux (/dev/dxg: WSL 2's GPU bridge).
NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/dxg")


def onnxruntime_cuda_available() -> bool:
    """Whether the installed onnxruntime offers the CUDA provider (``onnxruntime-gpu``).

    Offered is not proven: the provider can still fail to start (no device, missing CUDA
    libraries); :func:`open_session` then falls back."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def nvidia_device_present() -> bool:
    """A cheap look for an NVIDIA driver before paying for ``import torch``: on Linux its
    device nodes; elsewhere there is no cheap test, so True (PyTorch will say)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(node) for node in NVIDIA_NODES)


def torch_cuda_available() -> bool:
    """Whether PyTorch and onnx2torch are installed and PyTorch sees a CUDA device.
    Imports ``torch`` only when both packages are installed and a device may exist."""
    if any(importlib.util.find_spec(name) is None for name in ("torch", "onnx2torch")):
        return False
    if not nvidia_device_present():
        return False
    try:
        import onnx2torch  # noqa: F401
        import torch
    except Exception as exc:  # a broken install (a missing CUDA library, torchvision) is "absent"
        logger.warning("PyTorch or onnx2torch is installed but cannot be imported: %s", exc)
        return False
    return bool(torch.cuda.is_available())


@cache
def cuda_routes() -> tuple[Route, ...]:
    """The CUDA routes installed here, in order of preference (probed once per process)."""
    routes: list[Route] = []
    if onnxruntime_cuda_available():
        routes.append("onnxruntime-cuda")
    if torch_cuda_available():
        routes.append("torch-cuda")
    return tuple(routes)


def plan_routes(device: str) -> tuple[Route, ...]:
    """The routes to try for a ``vision.device`` setting, first choice first."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "cpu":
        return ("cpu",)
    found = cuda_routes()
    if device == "cuda":
        if not found:
            raise AcceleratorError(
                f"vision.device is cuda but no CUDA route was found: {INSTALL_HINT}"
            )
        return found
    return (*found, "cpu")


def choose_route(device: str) -> Route:
    """The route a model would take for this setting (the first of :func:`plan_routes`)."""
    return plan_routes(device)[0]


def open_session(
    device: str, path: Path, input_dims: DimNames, output_dims: DimNames, what: str
) -> tuple[Route, DeviceSession | None]:
    """Open the model at ``path`` on the first route of ``device`` that works.

    Returns ``("cpu", None)`` when the CPU is the route: the caller opens its CPU backend
    as before. A CUDA route that fails to open is logged and the next one tried; with
    ``device == "cuda"`` and every route failed, :class:`AcceleratorError`. ``what`` names
    the model in the log ("embedder sface")."""
    routes: Sequence[Route] = plan_routes(device)
    failures: list[str] = []
    for route in routes:
        if route == "cpu":
            reason = f" ({'; '.join(failures)})" if failures else ""
            logger.info("%s runs on the CPU%s", what, reason)
            return "cpu", None
        from facegate.vision import gpu_runtime

        try:
            session = gpu_runtime.open_cuda_session(route, path, input_dims, output_dims)
        except Exception as exc:  # any failure of an optional GPU stack: try the next route
            logger.warning("%s: the %s route failed to open: %s", what, route, exc)
            failures.append(f"{route}: {exc}")
            continue
        logger.info("%s runs on %s (%s)", what, route, session.device_name)
        return route, session
    raise AcceleratorError(
        f"vision.device is cuda but no CUDA route opened ({'; '.join(failures)}); {INSTALL_HINT}"
    )
