"""The service with its web UI: the REST API of ``facegate.service`` plus the pages under
``/ui`` and their static files. ``facegate serve`` runs this app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from facegate.config import Settings
from facegate.service.app import create_app
from facegate.web.pages import (
    audit,
    cameras,
    dashboard,
    events,
    identify,
    people,
    policy,
    signin,
)
from facegate.web.pages import (
    settings as settings_page,
)
from facegate.web.ui import STATIC_PATH, SecurityHeadersMiddleware, install_ui_handlers

STATIC_DIR = Path(__file__).parent / "static"
PAGES = (signin, dashboard, people, identify, cameras, events, policy, audit, settings_page)


def create_site(settings: Settings | None = None) -> FastAPI:
    app = create_app(settings)
    for page in PAGES:
        app.include_router(page.router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
    install_ui_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return app
