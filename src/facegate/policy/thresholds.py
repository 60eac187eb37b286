"""Operating points: users pick a false-match rate, not a raw similarity threshold.

Thresholds were calibrated per model on every impostor pair among the images of
``../shared/data/faces`` (see ``facegate.eval.calibrate``).
"""

from __future__ import annotations

import math

from facegate.config import FMR_CHOICES
from facegate.errors import ConfigError
from facegate.types import Decision, Match, OperatingPoint, Verdict
from facegate.vision.calibration import model_calibration


def fmr_key(fmr: float) -> str:
    """The calibration key of a false-match rate: 0.001 -> "1e-3"."""
    for choice in FMR_CHOICES:
        if abs(fmr - choice) <= choice * 1e-6:
            exponent = round(-math.log10(choice))
            return f"1e-{exponent}"
    choices = ", ".join(f"{c:g}" for c in FMR_CHOICES)
    raise ConfigError(f"false-match rate {fmr:g} is not calibrated; choose one of {choices}")


def operating_point(model_id: str, fmr: float) -> OperatingPoint:
    thresholds = model_calibration(model_id).get("thresholds", {})
    key = fmr_key(fmr)
    if key not in thresholds:
        raise ConfigError(f"model {model_id!r} has no threshold for FMR {key}")
    return OperatingPoint(model_id=model_id, fmr=fmr, threshold=float(thresholds[key]))


def decide(match: Match, point: OperatingPoint, *, open_set: bool) -> Decision:
    """Accept a match only at or above the operating point's threshold."""
    if match.model_id != point.model_id:
        raise ConfigError(
            f"match from model {match.model_id!r} judged at the operating point of "
            f"{point.model_id!r}"
        )
    named = match.subject_id is not None or not open_set
    if named and match.similarity >= point.threshold:
        return Decision(Verdict.MATCH, match, point, "similarity at or above the threshold")
    if open_set:
        unknown = Match(None, match.similarity, match.model_id)
        return Decision(
            Verdict.UNKNOWN, unknown, point, "no enrolled subject reached the threshold"
        )
    return Decision(Verdict.NO_MATCH, match, point, "similarity below the threshold")
