"""1:N identify and 1:1 verify against a collection."""

from __future__ import annotations

from fastapi import APIRouter, Request

from facegate.errors import NoFaceError
from facegate.recognition import FaceRecognizer
from facegate.service.auditing import Outcome, audited
from facegate.service.deps import RecognizeAccess, StateDep
from facegate.service.images import ImageField, read_images
from facegate.service.liveness_gate import probe_embedding, require_step_up
from facegate.service.openapi import image_body
from facegate.service.schemas import (
    DecisionPublic,
    IdentifiedFace,
    IdentifyParams,
    IdentifyResponse,
    OperatingPointPublic,
    VerifyParams,
    VerifyResponse,
)
from facegate.service.state import ServiceState
from facegate.types import Verdict

router = APIRouter(prefix="/v1/collections/{collection}", tags=["recognition"])

PROBE = (ImageField("image"),)


def _recognizer(state: ServiceState, collection: str, fmr: float | None) -> FaceRecognizer:
    shared = state.recognizer(collection)
    if fmr is None:
        return shared
    # Same gallery (and index), same models; only the operating point differs.
    return FaceRecognizer(state.settings, shared.gallery, shared.pipeline, fmr=fmr)


@router.post(
    "/identify",
    response_model=IdentifyResponse,
    summary="1:N for every face in the image: top-k candidates and an open-set decision.",
    openapi_extra=image_body(IdentifyParams, PROBE, {"image_base64": "/9j/4AAQ...", "top_k": 3}),
)
async def identify(request: Request, state: StateDep, access: RecognizeAccess) -> IdentifyResponse:
    params, images = await read_images(
        request, IdentifyParams, PROBE, state.settings.service.max_images
    )
    data = images["image"][0].data

    def work(note: Outcome) -> IdentifyResponse:
        recognizer = _recognizer(state, access.collection, params.fmr)
        results = recognizer.identify(data, params.top_k)
        if not results:
            raise NoFaceError("no face was found in the image")
        state.metrics.faces.labels("identify").inc(len(results))
        matched = [
            r.decision.match.subject_id
            for r in results
            if r.decision.verdict is Verdict.MATCH and r.decision.match.subject_id
        ]
        note.outcome = "match" if matched else "unknown"
        note.subject_ids = matched
        note.detail = {
            "faces": len(results),
            "verdicts": [r.decision.verdict.value for r in results],
            "fmr": recognizer.fmr,
        }
        return IdentifyResponse(
            collection=access.collection,
            operating_point=OperatingPointPublic.of(recognizer.operating_point),
            faces=[IdentifiedFace.of(r) for r in results],
        )

    anonymous = state.is_ephemeral(access.collection)
    return await state.infer(
        audited, state.audit, access.key, "identify", access.collection, work, anonymous
    )


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="1:1: is the face in the image this subject? (subject id or external id)",
    openapi_extra=image_body(
        VerifyParams, PROBE, {"image_base64": "/9j/4AAQ...", "subject_id": "emp-1815"}
    ),
)
async def verify(request: Request, state: StateDep, access: RecognizeAccess) -> VerifyResponse:
    params, images = await read_images(
        request, VerifyParams, PROBE, state.settings.service.max_images
    )
    data = images["image"][0].data

    def work(note: Outcome) -> VerifyResponse:
        recognizer = _recognizer(state, access.collection, params.fmr)
        subject = recognizer.gallery.resolve(params.subject_id)
        note.subject_ids = [subject.id]
        if params.liveness_session is not None:  # step-up: the session must vouch first
            require_step_up(
                state,
                params.liveness_session,
                probe_embedding(recognizer, data, params.face),
                model_id=recognizer.model_id,
                collection=access.collection,
                subject_id=subject.id,
                key_id=access.key.id,
            )
        subject, decision = recognizer.verify(subject.id, data, params.face)
        state.metrics.faces.labels("verify").inc()
        note.outcome = decision.verdict.value
        note.detail = {"similarity": decision.match.similarity, "fmr": recognizer.fmr}
        return VerifyResponse(
            **DecisionPublic.fields_of(decision),
            subject_id=subject.id,
            name=subject.display_name,
            liveness="passed" if params.liveness_session is not None else None,
        )

    anonymous = state.is_ephemeral(access.collection)
    return await state.infer(
        audited, state.audit, access.key, "verify", access.collection, work, anonymous
    )
