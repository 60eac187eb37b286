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


def model_calibration(model_id: str) -> dict[str, Any]:
    models: dict[str, Any] = load_calibration().get("models", {})
    if model_id not in models:
        raise ConfigError(
            f"model {model_id!r} has no calibration; calibrated models: {', '.join(sorted(models))}"
        )
    found: dict[str, Any] = models[model_id]
    return found
