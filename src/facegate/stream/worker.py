"""One camera: frames -> faces -> tracks -> best shots -> a decision per track -> events.

``CameraWorker.process(frame)`` is the whole analysis of one frame (tests drive it
directly); ``run()`` reads a capture until it ends or is stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from facegate.config import CameraSettings, Settings, TrackingSettings
from facegate.events.model import EventKind, StreamEvent
from facegate.events.publisher import Publisher
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.records import utc_now
from facegate.policy.thresholds import decide, operating_point
from facegate.recognition import PROBE_GATE_FACTORS, FaceRecognizer, face_crop_jpeg
from facegate.stream.capture import CaptureOptions, FrameCapture
from facegate.stream.cuts import CutDetector
from facegate.stream.doors import CameraDoors
from facegate.stream.frames import Image, VideoFrame
from facegate.stream.judge import Shot, TrackDecision, TrackJudge, Vote
from facegate.stream.quotas import CameraQuotas
from facegate.stream.tracker import FaceTracker, Track
from facegate.types import Face, Match, Verdict
from facegate.vision.detect import YuNetDetector
from facegate.vision.quality import assess_quality

log = logging.getLogger("facegate.stream")
SHOT_MARGIN = 0.4  # around a shot's face, so alignment never runs off the crop


def _scaled_face(face: Face, factor: float) -> Face:
    x1, y1, x2, y2 = face.bbox
    return dataclasses.replace(
        face,
        bbox=(x1 * factor, y1 * factor, x2 * factor, y2 * factor),
        landmarks=(face.landmarks * factor).astype(np.float32),
    )


def cut_shot(image: Image, face: Face) -> tuple[Image, Face]:
    """The face with a margin, copied out of the frame, and the face in its pixels."""
    x1, y1, x2, y2 = face.bbox
    pad = SHOT_MARGIN * max(x2 - x1, y2 - y1)
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    right, bottom = min(width, int(x2 + pad) + 1), min(height, int(y2 + pad) + 1)
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    shift = np.array([left, top], dtype=np.float32)
    moved = dataclasses.replace(
        face,
        bbox=(x1 - left, y1 - top, x2 - left, y2 - top),
        landmarks=(face.landmarks - shift).astype(np.float32),
    )
    return crop, moved


@dataclasses.dataclass
class WorkerCounts:
    frames: int = 0  # analysed
    faces: int = 0
    embedded: int = 0
    cuts: int = 0  # scene cuts and reopened sources, each ending every track
    # Every kind present from the start: the status thread copies this while the worker
    # counts, and a dict that never grows can be copied safely meanwhile.
    events: Counter[str] = dataclasses.field(
        default_factory=lambda: Counter({str(kind): 0 for kind in EventKind})
    )
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    busy_s: float = 0.0  # time spent analysing


class CameraWorker:
    def __init__(
        self,
        camera: CameraSettings,
        recognizer: FaceRecognizer,
        publisher: Publisher,
        *,
        tracking: TrackingSettings | None = None,
        snapshots: bool = False,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.camera = camera
        self.recognizer = recognizer
        self.publisher = publisher
        self.tracking = tracking or recognizer.settings.stream.tracking
        self.snapshots = snapshots
        self.clock = clock
        vision = recognizer.settings.vision
        # Frames arrive already scaled to the detection size: the detector scales nothing.
        self.detector = YuNetDetector(
            vision.detection_threshold,
            vision.nms_threshold,
            1,
            camera.detection_size,
            backend=vision.detector_backend,
            device=vision.device,
        )
        self.tracker = FaceTracker(self.tracking)
        self.judges: dict[int, TrackJudge] = {}
        stranger_fmr = self.tracking.stranger_fmr
        self._stranger_below = (
            None
            if stranger_fmr == 0
            else operating_point(recognizer.model_id, stranger_fmr).threshold
        )
        self.cuts = CutDetector(self.tracking.cut_threshold)
        # Doors this camera drives and quotas it claims; None without a database.
        durable = recognizer.durable
        self.doors: CameraDoors | None = None
        self.quotas: CameraQuotas | None = None
        if durable is not None:
            applications = ApplicationStore(durable.engine)
            self.doors = CameraDoors(camera.name, applications, recognizer.gallery)
            self.quotas = CameraQuotas(
                camera.name, applications, recognizer.gallery, recognizer.model_id, clock
            )
        self._last_index = -1
        self.counts = WorkerCounts()
        self.capture: FrameCapture | None = None
        self._stop = threading.Event()

    # --- one frame -----------------------------------------------------------------------
    def detect(self, frame: VideoFrame) -> tuple[list[Face], bool]:
        """The faces to track in ``frame`` (in its pixels), and whether it starts a new
        scene: a cut, or the first frame after the source was reopened."""
        small, scale = frame.scaled(self.camera.detection_size)
        reopened = frame.index <= self._last_index
        self._last_index = frame.index
        new_scene = self.cuts.is_cut(small) or reopened
        faces = [_scaled_face(f, 1 / scale) for f in self.detector.detect(small)]
        roi = self.camera.roi
        kept = []
        for face in faces:
            if face.width < self.camera.min_face_size:
                continue
            if roi is not None:
                cx, cy = face.center
                fx, fy = cx / frame.width, cy / frame.height
                if not (roi[0] <= fx <= roi[2] and roi[1] <= fy <= roi[3]):
                    continue
            kept.append(face)
        return kept, new_scene

    def process(self, frame: VideoFrame) -> list[StreamEvent]:
        """Analyse one frame; returns (and publishes) the events it caused."""
        began = time.perf_counter()
        faces, new_scene = self.detect(frame)
        self.counts.frames += 1
        self.counts.faces += len(faces)
        events: list[StreamEvent] = []
        if new_scene:
            self.counts.cuts += 1
            for track in self.tracker.finish():
                events += self._end(track, frame.position)
        update = self.tracker.update(faces, frame.time)
        events += [self._event(EventKind.TRACK_STARTED, t, frame.position) for t in update.started]
        for track, face in update.seen:
            # Shots count from a track's first frame; it is decided once confirmed.
            judge = self.judges.get(track.id) or self._new_judge(track.id)
            if judge.decided:
                continue
            image = frame.full()
            quality = assess_quality(image, face)
            usable = min(quality.details.get(f, 1.0) for f in PROBE_GATE_FACTORS)
            crop, moved = cut_shot(image, face)
            judge.offer(Shot(quality.score, usable, frame.position, face.bbox, crop, moved))
            if track.confirmed and judge.ready():
                decision = judge.record(self._judge_shots(judge.take()))
                if decision is not None:
                    events += self._decided(track, decision, frame.position)
        for track in update.ended:
            events += self._end(track, frame.position)
        for gone in self.judges.keys() - {t.id for t in self.tracker.tracks}:
            del self.judges[gone]  # tentative tracks that never became tracks
        for event in events:
            self._publish(event)
        self.counts.busy_s += time.perf_counter() - began
        return events

    def finish(self, position: float) -> list[StreamEvent]:
        """The source ended: decide and end every open track."""
        events: list[StreamEvent] = []
        for track in self.tracker.finish():
            events += self._end(track, position)
        for event in events:
            self._publish(event)
        return events

    def _end(self, track: Track, position: float) -> list[StreamEvent]:
        judge = self.judges.pop(track.id, None)
        events = []
        if judge is not None and not judge.decided:
            if judge.window:
                judge.record(self._judge_shots(judge.take()))
            events += self._decided(track, judge.finish(), position)
        events.append(self._event(EventKind.TRACK_ENDED, track, position))
        return events

    # --- identification ----------------------------------------------------------------
    def _new_judge(self, track_id: int) -> TrackJudge:
        judge = TrackJudge(
            self.tracking,
            self.recognizer.operating_point.threshold,
            self._score_subject,
            self._stranger_below,
        )
        self.judges[track_id] = judge
        return judge

    def _score_subject(self, subject_id: str, shots: Sequence[Shot]) -> list[float]:
        """Each shot's similarity to the subject's best template."""
        r = self.recognizer
        templates = r.gallery.subject_templates(subject_id, r.model_id)
        if not templates:  # erased meanwhile
            return [float("-inf")] * len(shots)
        stacked = np.stack([t.embedding for t in templates])
        space = r.pipeline.embedder.space
        return [
            float(space.score(shot.embedding, stacked).max())
            if shot.embedding is not None
            else float("-inf")
            for shot in shots
        ]

    def _judge_shots(self, shots: Sequence[Shot]) -> list[Shot]:
        r = self.recognizer
        point = r.operating_point
        # One batch for the window's shots: a little cheaper per face than one by one.
        embeddings = r.pipeline.embedder.embed_many([(shot.crop, shot.face) for shot in shots])
        for shot, embedding in zip(shots, embeddings, strict=True):
            shot.embedding = embedding
            self.counts.embedded += 1
            found = r.gallery.search(r.model_id, embedding, r.pipeline.embedder.space, 1)
            if not found:
                shot.vote = Vote(None, None, float("-inf"))
                continue
            best = found[0]
            verdict = decide(
                Match(best.subject_id, best.similarity, r.model_id), point, open_set=True
            )
            named = verdict.verdict is Verdict.MATCH
            shot.vote = Vote(
                best.subject_id if named else None,
                best.display_name if named else None,
                best.similarity,
            )
        return list(shots)

    # --- events --------------------------------------------------------------------------
    def _event(self, kind: EventKind, track: Track, position: float, **details: Any) -> StreamEvent:
        details.setdefault("bbox", track.face.bbox)
        return StreamEvent(
            kind=kind,
            at=self.clock(),
            camera=self.camera.name,
            track_id=track.id,
            stream_time=position,
            collection_id=self.recognizer.gallery.collection_id,
            **details,
        )

    def _decided(self, track: Track, decision: TrackDecision, position: float) -> list[StreamEvent]:
        """The decision's event and the claims of the camera's quotas (access decisions
        follow when the decision is published)."""
        event = self._decision_event(track, decision, position)
        if self.quotas is None:
            return [event]
        best = decision.best
        return [event, *self.quotas.claim(event, None if best is None else best.embedding)]

    def _decision_event(
        self, track: Track, decision: TrackDecision, position: float
    ) -> StreamEvent:
        if decision.identified:
            assert decision.subject_id is not None
            self.recognizer.gallery.note_match(decision.subject_id)
        best = decision.best
        snapshot = None
        if self.snapshots and best is not None:
            snapshot = face_crop_jpeg(best.crop, best.face)
        return self._event(
            EventKind.IDENTIFIED if decision.identified else EventKind.UNKNOWN,
            track,
            position,
            subject_id=decision.subject_id,
            subject_name=decision.name,
            similarity=decision.similarity,
            quality=best.quality if best else None,
            shots=decision.shots,
            reason=decision.reason,
            bbox=best.bbox if best else track.face.bbox,
            shot_time=best.position if best else None,
            snapshot=snapshot,
        )

    def _publish(self, event: StreamEvent) -> None:
        self.counts.events[str(event.kind)] += 1
        self.publisher.publish(event)
        if self.doors is not None and event.kind in (EventKind.IDENTIFIED, EventKind.UNKNOWN):
            for access in self.doors.decide(event, self.clock):
                self.counts.events[str(access.kind)] += 1
                self.publisher.publish(access)

    # --- running -------------------------------------------------------------------------
    def run(self, options: CaptureOptions | None = None) -> None:
        """Read the camera until its source ends (a file) or ``stop()``."""
        self.capture = FrameCapture(self.camera.source, options or self.capture_options())
        self.capture.start()
        position = 0.0
        try:
            for frame in self.capture.frames():
                if self._stop.is_set():
                    break
                self.process(frame)
                position = frame.position
        finally:
            self.capture.stop()
            self.finish(position)

    def capture_options(self, settings: Settings | None = None) -> CaptureOptions:
        s = (settings or self.recognizer.settings).stream
        return CaptureOptions(
            transport=self.camera.transport,
            target_fps=self.camera.target_fps,
            queue_frames=s.queue_frames,
            realtime=self.camera.realtime,
            open_timeout_s=s.open_timeout_s,
            reconnect_min_s=s.reconnect_min_s,
            reconnect_max_s=s.reconnect_max_s,
        )

    def close(self) -> None:
        """Forget what the worker remembers in memory (anonymous quota faces)."""
        if self.quotas is not None:
            self.quotas.close()

    def stop(self) -> None:
        self._stop.set()
        if self.capture is not None:
            self.capture.stop()
