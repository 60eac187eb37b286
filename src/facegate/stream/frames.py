"""One decoded video frame, converted to BGR arrays only when and as large as needed:
detection wants a small copy of every analysed frame, best shots want full resolution
of a few."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


class VideoFrame:
    """``index``: frames decoded since the source was opened; ``position``: seconds into
    the source (from its timestamps); ``time``: seconds on the worker's steady clock,
    what tracking measures with."""

    def __init__(
        self,
        index: int,
        position: float,
        time: float,
        *,
        decoded: Any = None,
        array: Image | None = None,
    ) -> None:
        if (decoded is None) == (array is None):
            raise ValueError("give a decoded PyAV frame or a BGR array, not both")
        self.index = index
        self.position = position
        self.time = time
        self._decoded = decoded
        self._full = array
        if array is not None:
            self.width, self.height = array.shape[1], array.shape[0]
        else:
            self.width, self.height = decoded.width, decoded.height

    def full(self) -> Image:
        """The whole frame, BGR, converted once."""
        if self._full is None:
            self._full = self._decoded.to_ndarray(format="bgr24")
        return self._full

    def scaled(self, max_side: int) -> tuple[Image, float]:
        """The frame with its longer side at most ``max_side``, and the scale applied."""
        scale = min(1.0, max_side / max(self.width, self.height))
        if scale >= 1.0:
            return self.full(), 1.0
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        if self._full is not None:
            small = cv2.resize(self._full, size, interpolation=cv2.INTER_AREA)
            return small, scale  # type: ignore[return-value]
        # Scaling and colour conversion in one pass, without a full-size BGR copy.
        resized = self._decoded.reformat(
            width=size[0], height=size[1], format="bgr24", interpolation="AREA"
        )
        return resized.to_ndarray(), scale
