"""Subject access (GDPR Art. 15): everything facegate holds about one person, as JSON.

Template metadata, never the embedding itself: a vector is meaningless to the person and
would only hand a usable biometric template to whoever reads the export. Stored face
crops, which the person can recognise, are included.
"""

from __future__ import annotations

import base64
from typing import Any

from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.gallery import Gallery
from facegate.gallery.records import as_utc, utc_now

EXPORT_FORMAT = "facegate-subject-export/1"


def _applications(gallery: Gallery, subject_id: str) -> dict[str, Any]:
    """Zones the subject is recorded inside or outside of, and their quota claims."""
    engine = getattr(gallery.store, "engine", None)
    if engine is None:  # an ephemeral store keeps neither
        return {"zone_presence": [], "quota_claims": []}
    return ApplicationStore(engine).about_subject(subject_id)


def subject_export(gallery: Gallery, audit: AuditLog, subject_id: str) -> dict[str, Any]:
    """The export of one subject of ``gallery`` (raises UnknownSubjectError)."""
    subject = gallery.own(subject_id)
    templates = []
    for t in gallery.store.subject_templates(subject.id):
        image = gallery.store.get_template_image(t.id)
        templates.append(
            {
                "id": t.id,
                "model_id": t.model_id,
                "dimensions": int(t.embedding.shape[0]),
                "quality": round(t.quality, 4),
                "source": t.source,
                "created_at": as_utc(t.created_at).isoformat(),
                "encrypted_with_key": t.key_id,
                "face_image_jpeg_base64": base64.b64encode(image).decode() if image else None,
            }
        )
    events = []
    list_events = getattr(gallery.store, "list_events", None)
    if list_events is not None:
        for e in list_events(subject_id=subject.id, limit=10_000):
            events.append(
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "kind": e.kind,
                    "camera": e.camera,
                    "door": e.door,
                    "quota": e.quota,
                    "reason": e.reason,
                    "similarity": e.similarity,
                    "snapshot_jpeg_base64": base64.b64encode(e.snapshot).decode()
                    if e.snapshot
                    else None,
                }
            )
    return {
        "format": EXPORT_FORMAT,
        "exported_at": utc_now().isoformat(),
        "collection": {
            "name": gallery.collection.name,
            "model_id": gallery.collection.model_id,
            "max_template_age_days": gallery.collection.max_template_age_days,
            "max_idle_days": gallery.collection.max_idle_days,
        },
        "subject": {
            "id": subject.id,
            "display_name": subject.display_name,
            "external_id": subject.external_id,
            "metadata": subject.metadata,
            "created_at": as_utc(subject.created_at).isoformat(),
            "last_matched_at": as_utc(subject.last_matched_at).isoformat()
            if subject.last_matched_at
            else None,
        },
        "consents": [c.as_dict() for c in gallery.store.subject_consents(subject.id)],
        "templates": templates,
        "events": events,
        **_applications(gallery, subject.id),
        "audit": [r.as_dict() for r in audit.about_subject(subject.id)],
    }
