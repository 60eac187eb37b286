"""Plain-data views of results, shared by --json output and the tables."""

from __future__ import annotations

import math
from typing import Any

from facegate.gallery.records import Subject, Template
from facegate.recognition import FaceResult
from facegate.types import Decision, Face


def face_view(face: Face) -> dict[str, Any]:
    view: dict[str, Any] = {
        "bbox": [round(v, 1) for v in face.bbox],
        "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in face.landmarks],
        "score": round(face.score, 4),
    }
    if face.quality is not None:
        view["quality"] = face.quality.score
        view["quality_reasons"] = list(face.quality.reasons)
    return view


def score_view(value: float) -> float | None:
    """Scores for display: 6 decimals; no score at all (-inf) becomes null (valid JSON)."""
    return round(value, 6) if math.isfinite(value) else None


def decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "verdict": decision.verdict.value,
        "similarity": score_view(decision.match.similarity),
        "operating_point": decision.operating_point.as_dict(),
        "reason": decision.reason,
    }


def face_result_view(result: FaceResult, names: dict[str, str]) -> dict[str, Any]:
    subject_id = result.decision.match.subject_id
    return {
        **face_view(result.face),
        **decision_view(result.decision),
        "subject": {"id": subject_id, "name": names.get(subject_id, "")} if subject_id else None,
        "candidates": [
            {
                "subject_id": c.subject_id,
                "name": c.display_name,
                "similarity": score_view(c.similarity),
            }
            for c in result.candidates
        ],
    }


def subject_view(subject: Subject, templates: list[Template] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": subject.id,
        "name": subject.display_name,
        "external_id": subject.external_id,
        "metadata": subject.metadata,
        "created_at": subject.created_at.isoformat(),
    }
    if templates is not None:
        view["templates"] = [
            {
                "id": t.id,
                "model_id": t.model_id,
                "quality": round(t.quality, 4),
                "source": t.source,
                "created_at": t.created_at.isoformat(),
            }
            for t in templates
        ]
    return view
