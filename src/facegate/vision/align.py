"""Alignment of a face to the 112x112 ArcFace template from its five landmarks."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.types import FloatArray

# The standard ArcFace 112x112 five-point template (insightface), also used by SFace.
ARCFACE_TEMPLATE_112: FloatArray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(landmarks: FloatArray, size: int = 112) -> NDArray[np.float64]:
    """The 2x3 similarity transform taking ``landmarks`` (5, 2) onto the template."""
    if landmarks.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2), got {landmarks.shape}")
    template = ARCFACE_TEMPLATE_112 * (size / 112.0)
    matrix, _ = cv2.estimateAffinePartial2D(
        landmarks.astype(np.float32), template, method=cv2.LMEDS
    )
    if matrix is None:  # degenerate landmarks (all on a point or a line)
        raise ValueError("landmarks are degenerate; cannot align")
    return np.asarray(matrix, dtype=np.float64)


def align_face(
    image: NDArray[np.uint8], landmarks: FloatArray, size: int = 112
) -> NDArray[np.uint8]:
    """Warp the face to a ``(size, size, 3)`` crop in the ArcFace pose."""
    matrix = similarity_transform(landmarks, size)
    aligned = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(aligned, dtype=np.uint8)
