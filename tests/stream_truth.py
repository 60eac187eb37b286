"""The hand-made ground truth of short_hamilton_clip.mp4 (tests/data/hamilton_clip_truth.json,
identities judged by eye, see tests/data/README.md) and the checks of stream events
against it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from facegate.config import Settings
from facegate.events.model import EventKind, StreamEvent
from facegate.recognition import FaceRecognizer
from helpers import TEST_CONSENT

TRUTH = Path(__file__).with_name("data") / "hamilton_clip_truth.json"
ENROLLED = {
    "lin-manuel-miranda": ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    "alex-lacamoire": ("Alex Lacamoire", "alex-lacamoire.png"),
    "barack-obama": ("Barack Obama", "obama.jpg"),
}
NAME_TO_ID = {name: key for key, (name, _) in ENROLLED.items()}


@dataclass(frozen=True)
class TruthFace:
    who: str
    box: tuple[float, float, float, float]
    first: int
    last: int
    note: str


def load_truth() -> tuple[float, list[TruthFace]]:
    data = json.loads(TRUTH.read_text(encoding="utf-8"))
    faces = []
    for shot in data["shots"]:
        for face in shot["faces"]:
            first, last = face.get("frames", [shot["start"], shot["end"]])
            faces.append(
                TruthFace(face["who"], tuple(face["box"]), first, last, face.get("note", ""))
            )
    return float(data["fps"]), faces


def enroll_clip_people(settings: Settings, video_root: Path) -> dict[str, str]:
    """Enroll the three photos of ../shared/data/video/enroll; subject id -> truth id."""
    recognizer = FaceRecognizer.open(settings)
    try:
        ids = {}
        for key, (name, photo) in ENROLLED.items():
            result = recognizer.enroll(name, [video_root / "enroll" / photo], consent=TEST_CONSENT)
            ids[result.subject.id] = key
        return ids
    finally:
        recognizer.close()


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def faces_at(faces: list[TruthFace], frame: int, bbox: tuple[float, ...]) -> list[TruthFace]:
    """The truth faces present at ``frame`` whose box holds the centre of ``bbox``."""
    centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    return [f for f in faces if f.first <= frame <= f.last and _inside(centre, f.box)]


def check_identified(
    events: list[StreamEvent], subject_truth: dict[str, str]
) -> list[tuple[str, int]]:
    """Every identified event against the truth: its best shot (``bbox`` at ``shot_time``)
    must lie in a box of the person it names, at that frame, and in no box of anyone
    else (an 'uncertain' or 'other' face there fails the check). Returns (who, frame)."""
    fps, faces = load_truth()
    checked = []
    for event in events:
        if event.kind is not EventKind.IDENTIFIED:
            continue
        assert event.subject_id is not None and event.bbox is not None
        assert event.shot_time is not None
        frame = round(event.shot_time * fps)
        named = subject_truth[event.subject_id]
        there = faces_at(faces, frame, event.bbox)
        whos = {f.who for f in there}
        assert whos == {named}, (
            f"track {event.track_id} was identified as {named} from frame {frame} at "
            f"{[round(v) for v in event.bbox]}, where the truth has {sorted(whos) or 'no face'}"
        )
        checked.append((named, frame))
    return checked


def unknown_on(events: list[StreamEvent], note: str) -> list[StreamEvent]:
    """Unknown decisions whose best shot lies on the truth face with this note."""
    fps, faces = load_truth()
    found = []
    for event in events:
        if event.kind is not EventKind.UNKNOWN or event.bbox is None:
            continue
        frame = round((event.shot_time or event.stream_time) * fps)
        if any(note in f.note for f in faces_at(faces, frame, event.bbox)):
            found.append(event)
    return found
