"""Liveness, readiness and Prometheus metrics (no key needed: bind to a trusted network)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from facegate.service.deps import StateDep
from facegate.service.problems import Problem
from facegate.service.schemas import Health, Readiness

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health, summary="Liveness: the process answers.")
@router.get("/v1/health", response_model=Health, include_in_schema=False)
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: models loaded and the store reachable (503 otherwise).",
)
@router.get("/v1/ready", response_model=Readiness, include_in_schema=False)
def ready(state: StateDep) -> Readiness:
    if not state.ready or not state.store_reachable():
        raise Problem(503, "not-ready", "the service is starting or its store is unreachable")
    return Readiness(
        status="ready",
        models=state.loaded_models,
        collections=len(state.store.list_collections()),
    )


@router.get(
    "/metrics",
    summary="Prometheus text format: requests, latencies, faces processed, gallery size.",
    response_class=Response,
)
@router.get("/v1/metrics", include_in_schema=False, response_class=Response)
def metrics(state: StateDep) -> Response:
    m = state.metrics
    for collection in state.store.list_collections():
        m.subjects.labels(collection.name).set(state.store.count_subjects(collection.name))
        m.templates.labels(collection.name).set(
            sum(state.store.template_counts(collection.name).values())
        )
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
