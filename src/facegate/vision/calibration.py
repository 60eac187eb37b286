"""Calibration data shipped with the package: score statistics and operating points.

Made by ``facegate eval calibrate --root ../shared/data/faces`` (see ``facegate.eval.calibrate``)
and stored as ``vision/data/calibration.json``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from facegate.errors import ConfigError

CALIBRATION_RESOURCE = "data/calibration.json"


@cache
def load_calibration() -> dict[str, Any]:
    resource = files("facegate.vision").joinpath(CALIBRATION_RESOURCE)
    try:
        data: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            "calibration data is missing; run `facegate eval calibrate --root DIR`"
        ) from exc
    return data


_registered: dict[str, dict[str, Any]] = {}


def register_calibration(model_id: str, thresholds: dict[str, float]) -> None:
    """Operating points for a user-registered model, measured by its owner: thresholds by
    false-match rate, e.g. ``{"1e-2": 0.25, "1e-3": 0.31, "1e-4": 0.37}``."""
    expected = {"1e-2", "1e-3", "1e-4"}
    if not set(thresholds) <= expected or not thresholds:
        raise ConfigError(f"thresholds must be keyed by some of {sorted(expected)}")
    _registered[model_id] = {"thresholds": {k: float(v) for k, v in thresholds.items()}}


def model_calibration(model_id: str) -> dict[str, Any]:
    if model_id in _registered:
        return _registered[model_id]
    models: dict[str, Any] = load_calibration().get("models", {})
    if model_id not in models:
        raise ConfigError(
            f"model {model_id!r} has no calibration; calibrated models: {', '.join(sorted(models))}"
        )
    found: dict[str, Any] = models[model_id]
    return found
