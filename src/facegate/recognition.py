"""The recognition API: enroll, identify (1:N, open-set), verify (1:1), compare.

It joins the vision pipeline, the gallery and the operating point. Every answer reports
the similarity and the operating point used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.config import Settings
from facegate.errors import (
    ConsentRequiredError,
    EmptyGalleryError,
    FacegateError,
    InvalidConsentError,
    InvalidSubjectError,
    LowQualityError,
    ModelMismatchError,
    MultipleFacesError,
    NoFaceError,
    NoTemplatesError,
)
from facegate.gallery.gallery import Gallery
from facegate.gallery.opening import index_options, open_store
from facegate.gallery.records import DEFAULT_COLLECTION, ConsentGrant, Subject, Template, new_id
from facegate.gallery.sql_store import SqlStore
from facegate.policy.thresholds import decide, operating_point
from facegate.types import Candidate, Decision, Face, Match, OperatingPoint, Verdict
from facegate.vision.pipeline import FacePipeline

ImageInput = bytes | Path | str  # bytes are an encoded image; str is a file path
FaceChoice = Literal["largest"] | int | None
# A probe this small, blurred or badly exposed is answered "unknown" rather than guessed.
# Pose is left out: a turned face lowers genuine scores (a miss), it does not make false matches.
MIN_PROBE_QUALITY = 0.15
PROBE_GATE_FACTORS = ("size_factor", "sharpness_factor", "exposure_factor")
# A stored face crop (opt-in per collection): the box widened by half, at most this side.
CROP_MARGIN = 0.5
CROP_MAX_SIDE = 512


@dataclass(frozen=True, slots=True)
class Refusal:
    """An enrollment photo that was not used, and why."""

    source: str
    code: str
    message: str
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_error(cls, source: str, error: FacegateError) -> Refusal:
        return cls(source, error.code, str(error), getattr(error, "reasons", ()))


@dataclass(frozen=True, slots=True)
class EnrollResult:
    subject: Subject
    created: bool
    templates: list[Template]
    refused: list[Refusal] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FaceResult:
    """One probe face in a 1:N search: its candidates and the open-set decision."""

    face: Face
    candidates: list[Candidate]
    decision: Decision


def _source_name(item: ImageInput) -> str:
    return "upload" if isinstance(item, bytes) else Path(item).name


def pick_face(faces: Sequence[Face], choice: FaceChoice) -> Face:
    """One face out of a detection: refuse none, and several unless the caller chose."""
    if not faces:
        raise NoFaceError("no face was found in the image")
    if isinstance(choice, int) and not isinstance(choice, bool):
        if not 0 <= choice < len(faces):
            raise MultipleFacesError(
                f"face index {choice} is out of range: {len(faces)} face(s) found (largest first)",
                len(faces),
            )
        return faces[choice]
    if len(faces) > 1 and choice != "largest":
        raise MultipleFacesError(
            f"{len(faces)} faces were found; choose one (largest first, or 'largest')", len(faces)
        )
    return faces[0]  # faces come largest first


def face_crop_jpeg(image: NDArray[np.uint8], face: Face) -> bytes:
    """The face with some margin, as a JPEG: enough to re-enroll with another model,
    far less than the whole photo."""
    x1, y1, x2, y2 = face.bbox
    pad_x, pad_y = (x2 - x1) * CROP_MARGIN, (y2 - y1) * CROP_MARGIN
    height, width = image.shape[:2]
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(width, int(x2 + pad_x)), min(height, int(y2 + pad_y))
    crop: NDArray[Any] = image[top:bottom, left:right]
    scale = CROP_MAX_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok, "OpenCV failed to encode a JPEG from a decoded image"
    return encoded.tobytes()


def quality_gate(decision: Decision, probes: Sequence[Face], *, open_set: bool) -> Decision:
    """Withdraw a match that rests on a probe too small, blurred or dark to be trusted:
    ``unknown`` in 1:N, ``no_match`` in 1:1, with the reason."""
    if decision.verdict is not Verdict.MATCH:
        return decision
    for face in probes:
        quality = face.quality
        if quality is None:
            continue
        usable = min(quality.details.get(f, 1.0) for f in PROBE_GATE_FACTORS)
        if usable < MIN_PROBE_QUALITY:
            why = "; ".join(quality.reasons) or "low quality"
            return Decision(
                Verdict.UNKNOWN if open_set else Verdict.NO_MATCH,
                Match(None, decision.match.similarity, decision.match.model_id),
                decision.operating_point,
                f"a probe is too small, blurred or badly exposed to decide: {why}",
            )
    return decision


class FaceMatcher:
    """1:1 between photos, with no gallery: the pipeline and the operating point."""

    def __init__(
        self,
        settings: Settings,
        pipeline: FacePipeline | None = None,
        *,
        model_id: str | None = None,
        fmr: float | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline or FacePipeline(model_id or settings.model, settings.vision)
        self.model_id = self.pipeline.model_id
        self.fmr = fmr if fmr is not None else settings.fmr

    @property
    def operating_point(self) -> OperatingPoint:
        return operating_point(self.model_id, self.fmr)

    # --- images --------------------------------------------------------------------------
    def load(self, item: ImageInput) -> NDArray[np.uint8]:
        if isinstance(item, bytes):
            return self.pipeline.decode(item)
        return self.pipeline.load(Path(os.fspath(item)))

    def _one_face(self, item: ImageInput, choice: FaceChoice) -> tuple[Face, int]:
        face, count, _ = self._one_face_in_image(item, choice)
        return face, count

    def _one_face_in_image(
        self, item: ImageInput, choice: FaceChoice
    ) -> tuple[Face, int, NDArray[np.uint8]]:
        image = self.load(item)
        faces = self.pipeline.detect(image)
        face = pick_face(faces, choice)
        return self.pipeline.embed(image, [face])[0], len(faces), image

    def compare(
        self, item_a: ImageInput, item_b: ImageInput, face: FaceChoice = "largest"
    ) -> Decision:
        """1:1 between two photos: same person or not, at the operating point."""
        face_a, _ = self._one_face(item_a, face)
        face_b, _ = self._one_face(item_b, face)
        assert face_a.embedding is not None and face_b.embedding is not None
        score = float(self.pipeline.embedder.space.score(face_a.embedding, face_b.embedding)[0])
        match = Match(None, score, self.model_id)
        decision = decide(match, self.operating_point, open_set=False)
        return quality_gate(decision, [face_a, face_b], open_set=False)


class FaceRecognizer(FaceMatcher):
    """Enroll, identify and verify against one collection's gallery, plus 1:1 comparison.

    The collection pins the model; its operating point is the default, ``fmr`` overrides it.
    """

    def __init__(
        self,
        settings: Settings,
        gallery: Gallery,
        pipeline: FacePipeline | None = None,
        *,
        fmr: float | None = None,
    ) -> None:
        pinned = gallery.collection.model_id
        if pipeline is not None and pipeline.model_id != pinned:
            raise ModelMismatchError(
                f"collection {gallery.collection_id!r} is pinned to model {pinned!r}, "
                f"not {pipeline.model_id!r}"
            )
        super().__init__(
            settings,
            pipeline,
            model_id=pinned,
            fmr=fmr if fmr is not None else gallery.collection.fmr,
        )
        self.gallery = gallery
        self.durable: SqlStore | None = None  # the database open() opened, if any
        gallery.load_index(self.model_id, self.pipeline.embedder.dim)  # FAISS loaded at start

    @classmethod
    def open(
        cls,
        settings: Settings,
        collection: str = DEFAULT_COLLECTION,
        *,
        model_id: str | None = None,
        fmr: float | None = None,
        create: bool = True,
    ) -> FaceRecognizer:
        """The embedded default: SQLite in ``settings.data_dir``, templates encrypted with
        the configured data key (made on first start). A missing collection is
        created, pinned to ``model_id`` (default: the configured model); an existing one
        must be pinned to ``model_id`` if one is given. ``create=False``: a missing
        collection is an error."""
        store = open_store(settings)
        try:
            gallery = Gallery.open(
                store,
                collection,
                create_with_model=(model_id or settings.model) if create else None,
                options=index_options(settings, collection),
            )
        except FacegateError:
            store.close()
            raise
        if model_id is not None and gallery.collection.model_id != model_id:
            store.close()
            raise ModelMismatchError(
                f"collection {collection!r} is pinned to model {gallery.collection.model_id!r}; "
                f"use another collection for {model_id!r}"
            )
        recognizer = cls(settings, gallery, fmr=fmr)
        recognizer.durable = store
        return recognizer

    def close(self) -> None:
        self.gallery.store.close()
        if self.durable is not None and self.durable is not self.gallery.store:
            self.durable.close()

    # --- enroll ----------------------------------------------------------------------------
    def prepare_template(
        self, item: ImageInput, subject_id: str, choice: FaceChoice = None
    ) -> Template:
        """Decode, detect, check quality and embed one enrollment photo (writes nothing).
        The face crop comes along only if the collection stores images."""
        face, _, image = self._one_face_in_image(item, choice)
        assert face.quality is not None and face.embedding is not None
        if face.quality.score < self.settings.gallery.min_enroll_quality:
            reasons = face.quality.reasons or ("below the minimum quality",)
            raise LowQualityError(
                f"face quality {face.quality.score:.2f} is below the enrollment minimum "
                f"{self.settings.gallery.min_enroll_quality:.2f}: {'; '.join(reasons)}",
                face.quality.score,
                reasons,
            )
        return Template(
            id=new_id(),
            subject_id=subject_id,
            model_id=self.model_id,
            embedding=face.embedding,
            quality=face.quality.score,
            source=_source_name(item),
            image=face_crop_jpeg(image, face) if self.gallery.collection.store_images else None,
        )

    def _new_subject(
        self, name: str, external_id: str | None, metadata: dict[str, Any] | None
    ) -> Subject:
        try:
            return Subject(
                id=new_id(),
                display_name=name,
                external_id=external_id,
                metadata=metadata or {},
                collection_id=self.gallery.collection_id,
            )
        except ValueError as error:
            raise InvalidSubjectError(f"invalid subject: {error}") from error

    def enroll(
        self,
        name: str,
        images: Sequence[ImageInput],
        *,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        face: FaceChoice = None,
        strict: bool = True,
        subject: Subject | None = None,
        consent: ConsentGrant | None = None,
    ) -> EnrollResult:
        """Enroll photos for a new subject (or ``subject``), in one transaction.

        ``consent``: the subject's consent, recorded with the templates. Required for a new
        subject in a durable collection; an existing subject may rely on one on file.
        ``strict``: any refused photo raises its error and nothing is written. Otherwise the
        usable photos are enrolled and the others reported; if none is usable, the first
        error is raised and nothing is written.
        """
        if not images:
            raise ValueError("give at least one image")
        if consent is None and subject is None and not self.gallery.ephemeral:
            raise ConsentRequiredError(
                "enrolling a new subject needs their consent: the legal basis and the "
                "version of the notice they were shown (see docs/privacy.md)"
            )
        target = subject or self._new_subject(name, external_id, metadata)
        record = None
        if consent is not None and not self.gallery.ephemeral:
            try:
                record = consent.record(target.id)
            except ValueError as error:
                raise InvalidConsentError(f"invalid consent: {error}") from error
        prepared: list[Template] = []
        refused: list[Refusal] = []
        first_error: FacegateError | None = None
        for item in images:
            try:
                prepared.append(self.prepare_template(item, target.id, face))
            except FacegateError as error:
                if strict:
                    raise
                first_error = first_error or error
                refused.append(Refusal.from_error(_source_name(item), error))
        if not prepared:
            assert first_error is not None
            raise first_error
        if subject is None:
            self.gallery.add_subject(target, prepared, record)
        else:
            self.gallery.add_templates(prepared, record)
        return EnrollResult(target, subject is None, prepared, refused)

    # --- recognise -------------------------------------------------------------------------
    def _check_gallery(self) -> None:
        counts = self.gallery.template_counts()
        if counts.get(self.model_id, 0):
            return
        if counts:
            others = ", ".join(f"{m} ({n})" for m, n in sorted(counts.items()))
            raise ModelMismatchError(
                f"collection {self.gallery.collection_id!r} has no templates for model "
                f"{self.model_id!r}, only for {others}"
            )
        raise EmptyGalleryError(
            f"collection {self.gallery.collection_id!r} is empty; enroll someone first"
        )

    def identify(self, item: ImageInput, top_k: int | None = None) -> list[FaceResult]:
        """1:N for every face in the image (largest first). Empty list: no face found."""
        if not self.gallery.indexed(self.model_id, self.pipeline.embedder.dim):
            self._check_gallery()  # says why: empty, or only other models' templates
        k = top_k or self.settings.gallery.top_k
        point = self.operating_point
        image = self.load(item)
        faces = self.pipeline.analyze(image)
        results = []
        for face in faces:
            assert face.embedding is not None and face.quality is not None
            candidates = self.gallery.search(
                self.model_id, face.embedding, self.pipeline.embedder.space, k
            )
            best = candidates[0] if candidates else None
            match = Match(
                best.subject_id if best else None,
                best.similarity if best else float("-inf"),
                self.model_id,
            )
            decision = quality_gate(decide(match, point, open_set=True), [face], open_set=True)
            if decision.verdict is Verdict.MATCH and decision.match.subject_id:
                self.gallery.note_match(decision.match.subject_id)
            results.append(FaceResult(face, candidates, decision))
        return results

    def verify(
        self, subject_ref: str, item: ImageInput, face: FaceChoice = "largest"
    ) -> tuple[Subject, Decision]:
        """1:1: is the face in the image the subject? Scores the subject's best template."""
        subject = self.gallery.resolve(subject_ref)
        templates = self.gallery.subject_templates(subject.id, self.model_id)
        if not templates:
            raise NoTemplatesError(
                f"subject {subject.display_name!r} has nothing enrolled for model {self.model_id!r}"
            )
        probe, _ = self._one_face(item, face)
        assert probe.embedding is not None
        scores = self.pipeline.embedder.space.score(
            probe.embedding, np.stack([t.embedding for t in templates])
        )
        match = Match(subject.id, float(scores.max()), self.model_id)
        decision = quality_gate(
            decide(match, self.operating_point, open_set=False), [probe], open_set=False
        )
        if decision.verdict is Verdict.MATCH:
            self.gallery.note_match(subject.id)
        return subject, decision
