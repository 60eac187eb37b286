"""What the applications keep about a person (zone presence, quota claims) is in their
export and goes with them on erasure."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from facegate.config import Settings
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.export import subject_export
from facegate.recognition import FaceRecognizer
from helpers import TEST_CONSENT


def test_presence_and_claims_are_exported_and_erased(tmp_path: Path, data_root: Path) -> None:
    recognizer = FaceRecognizer.open(Settings(data_dir=tmp_path / "data"))
    try:
        photo = data_root / "video" / "enroll" / "obama.jpg"
        subject = recognizer.enroll("Barack Obama", [photo], consent=TEST_CONSENT).subject
        assert recognizer.durable is not None
        apps = ApplicationStore(recognizer.durable.engine)
        at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
        apps.set_presence(subject.id, "building", True, at)
        apps.add_claim("meals", subject.id, at)
        audit = AuditLog(recognizer.durable.engine)

        exported = subject_export(recognizer.gallery, audit, subject.id)
        assert exported["zone_presence"] == [
            {"zone": "building", "inside": True, "at": at.isoformat()}
        ]
        assert exported["quota_claims"] == [{"quota": "meals", "at": at.isoformat()}]

        recognizer.gallery.erase_subject(subject.id)
        assert apps.presence(subject.id, "building") is None
        assert apps.claims_since("meals", subject.id, at) == []
        assert apps.count_claims() == 0
    finally:
        recognizer.close()
