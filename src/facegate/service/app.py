"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan opens the
store, loads the models once and makes a bootstrap admin key on first start."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from facegate import __version__
from facegate.config import Settings
from facegate.service.limits import BodySizeLimitMiddleware
from facegate.service.metrics import MetricsMiddleware
from facegate.service.problems import install_handlers
from facegate.service.routes import (
    access,
    audit,
    camera_control,
    collections,
    event_stream,
    events,
    keys,
    liveness,
    quotas,
    recognition,
    subjects,
    system,
    vision,
)
from facegate.service.state import ServiceState

DOCS_STATIC = "/docs/static"

log = logging.getLogger(__name__)

DESCRIPTION = """\
Self-hosted face recognition for consented uses: detect, compare, enroll subjects in
collections, identify (1:N, with an honest `unknown`) and verify (1:1).

**Auth**: `Authorization: Bearer <key>` (or `X-API-Key: <key>`). Scopes: `read` (GET),
`enroll` (subjects, faces), `recognize` (detect, compare, identify, verify), `admin`
(everything: collections, keys, audit). Keys may be limited to some collections.

**Images**: multipart parts (`image`, `images`, `image_a`/`image_b`) or JSON with base64
(`image_base64`, `images_base64`, ...). The server never fetches a URL or reads a path.

**Errors**: RFC 9457 `application/problem+json`, with a stable `type` per kind of problem
(`https://facegate.dev/problems/no-face`, ...). Embeddings are never returned.
"""


def install_api_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package: works without the internet."""
    app.mount(DOCS_STATIC, StaticFiles(directory=swagger_ui_path), name="api-docs-static")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="facegate API",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon-32x32.png",
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app. Nothing is loaded until its lifespan starts (under uvicorn, or a test
    client used as a context manager)."""
    settings = settings or Settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.inference = anyio.CapacityLimiter(settings.service.workers)
        await anyio.to_thread.run_sync(state.start)
        log.info(
            "facegate service ready: data in %s, models %s",
            settings.data_dir,
            ", ".join(state.loaded_models),
        )
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="facegate",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local files, not a CDN
        redoc_url=None,
    )
    app.state.facegate = state
    install_api_docs(app)
    install_handlers(app)
    for router in (
        system.router,
        vision.router,
        collections.router,
        subjects.router,
        recognition.router,
        keys.router,
        audit.router,
        event_stream.router,
        events.router,
        camera_control.router,
        access.router,
        quotas.router,
        liveness.router,
    ):
        app.include_router(router)
    # Outermost last: metrics see every answer, the 413 from the body limit included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.service.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
