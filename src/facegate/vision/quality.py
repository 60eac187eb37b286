"""Face quality 0..1 with reasons, from cheap, explainable measurements.

Each factor maps to 0..1; the quality is the lowest factor, so the score says how far
the worst problem is from acceptable, and ``reasons`` name every factor under 0.5.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.types import Face, Quality
from facegate.vision.align import align_face

# Inter-ocular distance in pixels: below LOW the face is useless, from HIGH on it is ideal.
IOD_LOW, IOD_HIGH = 8.0, 28.0
# Variance of the Laplacian on the aligned 112x112 grey crop.
SHARP_LOW, SHARP_HIGH = 3.0, 35.0
# |nose offset from the eye midpoint| / eye distance: 0 is frontal, ~0.5 is near profile.
YAW_OK, YAW_BAD = 0.15, 0.5
# (nose.y - eyes.y) / (mouth.y - eyes.y): ~0.49 frontal in the ArcFace template.
PITCH_CENTRE, PITCH_OK, PITCH_BAD = 0.49, 0.12, 0.3
# Mean grey level of the aligned crop.
DARK_BAD, DARK_OK, BRIGHT_OK, BRIGHT_BAD = 25.0, 60.0, 200.0, 235.0


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good`` (either direction), linear between."""
    if good == bad:
        return 1.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def pose_ratios(landmarks: NDArray[np.float32]) -> tuple[float, float]:
    """(yaw, pitch) ratios from five landmarks, independent of roll and scale."""
    right_eye, left_eye, nose, mouth_r, mouth_l = landmarks.astype(np.float64)
    eye_mid = (right_eye + left_eye) / 2
    mouth_mid = (mouth_r + mouth_l) / 2
    axis_x = left_eye - right_eye
    iod = float(np.linalg.norm(axis_x)) or 1e-6
    ux = axis_x / iod
    uy = np.array([-ux[1], ux[0]])  # perpendicular, pointing down the face
    yaw = float(np.dot(nose - eye_mid, ux)) / iod
    face_height = float(np.dot(mouth_mid - eye_mid, uy)) or 1e-6
    pitch = float(np.dot(nose - eye_mid, uy)) / face_height
    return yaw, pitch


def assess_quality(image: NDArray[np.uint8], face: Face) -> Quality:
    lm = face.landmarks
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    yaw, pitch = pose_ratios(lm)
    crop = cv2.cvtColor(align_face(image, lm), cv2.COLOR_BGR2GRAY)
    centre = crop[16:96, 16:96]
    sharpness = float(cv2.Laplacian(centre, cv2.CV_64F).var())
    brightness = float(centre.mean())

    factors = {
        "size": _ramp(iod, IOD_LOW, IOD_HIGH),
        "sharpness": _ramp(sharpness, SHARP_LOW, SHARP_HIGH),
        "yaw": _ramp(abs(yaw), YAW_BAD, YAW_OK),
        "pitch": _ramp(abs(pitch - PITCH_CENTRE), PITCH_BAD, PITCH_OK),
        "exposure": min(
            _ramp(brightness, DARK_BAD, DARK_OK), _ramp(brightness, BRIGHT_BAD, BRIGHT_OK)
        ),
    }
    reasons = []
    if factors["size"] < 0.5:
        reasons.append(f"too small (eye distance {iod:.0f} px)")
    if factors["sharpness"] < 0.5:
        reasons.append(f"blurred (sharpness {sharpness:.0f})")
    if factors["yaw"] < 0.5:
        reasons.append(f"turned sideways (yaw ratio {yaw:+.2f})")
    if factors["pitch"] < 0.5:
        reasons.append(f"tilted up or down (pitch ratio {pitch:.2f})")
    if factors["exposure"] < 0.5:
        kind = "under-exposed" if brightness < DARK_OK else "over-exposed"
        reasons.append(f"{kind} (mean level {brightness:.0f})")
    details = {
        **{f"{k}_factor": round(v, 4) for k, v in factors.items()},
        "eye_distance_px": round(iod, 2),
        "sharpness": round(sharpness, 2),
        "yaw_ratio": round(yaw, 4),
        "pitch_ratio": round(pitch, 4),
        "brightness": round(brightness, 2),
    }
    return Quality(score=round(min(factors.values()), 4), reasons=tuple(reasons), details=details)
