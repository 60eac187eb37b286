"""Detection and 1:1 comparison of two photos, with no gallery."""

from __future__ import annotations

from fastapi import APIRouter, Request

from facegate.recognition import FaceMatcher
from facegate.service.auditing import Outcome, audited
from facegate.service.deps import EnrollOrRecognizeKey, RecognizeKey, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.openapi import image_body
from facegate.service.schemas import (
    CompareParams,
    CompareResponse,
    DecisionPublic,
    DetectParams,
    DetectResponse,
    FacePublic,
)
from facegate.types import Verdict

router = APIRouter(prefix="/v1", tags=["recognition"])

DETECT_IMAGES = (ImageField("image"),)
COMPARE_IMAGES = (ImageField("image_a"), ImageField("image_b"))


@router.post(
    "/detect",
    response_model=DetectResponse,
    summary="Every face in an image: box, landmarks, detector score, quality with reasons.",
    openapi_extra=image_body(DetectParams, DETECT_IMAGES, {"image_base64": "/9j/4AAQ..."}),
)
async def detect(request: Request, state: StateDep, key: EnrollOrRecognizeKey) -> DetectResponse:
    _, images = await read_images(
        request, DetectParams, DETECT_IMAGES, state.settings.service.max_images
    )
    data = images["image"][0].data

    def work() -> DetectResponse:
        pipeline = state.matcher.pipeline
        picture = pipeline.decode(data)
        faces = pipeline.detect(picture)
        state.metrics.faces.labels("detect").inc(len(faces))
        height, width = picture.shape[:2]
        return DetectResponse(width=width, height=height, faces=[FacePublic.of(f) for f in faces])

    return await state.infer(work)


@router.post(
    "/compare",
    response_model=CompareResponse,
    summary="Image A against image B: similarity and same-person decision at an FMR.",
    openapi_extra=image_body(
        CompareParams,
        COMPARE_IMAGES,
        {"image_a_base64": "/9j/4AAQ...", "image_b_base64": "/9j/4AAQ...", "fmr": 0.001},
    ),
)
async def compare(request: Request, state: StateDep, key: RecognizeKey) -> CompareResponse:
    params, images = await read_images(
        request, CompareParams, COMPARE_IMAGES, state.settings.service.max_images
    )
    a, b = images["image_a"][0].data, images["image_b"][0].data

    def work(note: Outcome) -> CompareResponse:
        matcher = state.matcher
        if params.fmr is not None:
            matcher = FaceMatcher(state.settings, matcher.pipeline, fmr=params.fmr)
        decision = matcher.compare(a, b, params.face)
        state.metrics.faces.labels("compare").inc(2)
        note.outcome = decision.verdict.value
        note.detail = {"similarity": decision.match.similarity, "fmr": matcher.fmr}
        return CompareResponse(
            **DecisionPublic.fields_of(decision), same_person=decision.verdict is Verdict.MATCH
        )

    return await state.infer(audited, state.audit, key, "compare", None, work)
