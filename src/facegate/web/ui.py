"""What every page shares: templates, the signed-in key, scope checks that answer with a
page (not JSON), and the security headers of every ``/ui`` response.

Pages only read (server-rendered); every change a page offers goes through the REST API
from the page's script, signed in by the session cookie with the page's CSRF token
(``facegate.service.sessions``), so scopes, validation, audit and errors are the API's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate import __version__
from facegate.gallery.keys import ApiKey
from facegate.service.deps import StateDep
from facegate.service.problems import Problem
from facegate.service.sessions import session_key, session_of
from facegate.service.state import ServiceState

UI_PATH = "/ui"
STATIC_PATH = "/ui/static"
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

# Everything from this origin only: no CDN, no inline script or style, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
]

# The navigation: (path, label, scope needed to see it, whether the key must not be
# limited to collections).
NAV = (
    ("/ui/", "Dashboard", "read", False),
    ("/ui/people", "People", "read", False),
    ("/ui/identify", "Identify", "recognize", False),
    ("/ui/cameras", "Cameras", "read", False),
    ("/ui/events", "Events", "read", False),
    ("/ui/policy", "Access & quotas", "read", False),
    ("/ui/audit", "Audit", "admin", True),
    ("/ui/settings", "Settings", "admin", True),
)


def may_see(key: ApiKey, scope: str, unrestricted: bool) -> bool:
    return key.allows(scope) and not (unrestricted and key.collections is not None)


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in page."""

    def __init__(self, path: str) -> None:
        self.path = path


class PageForbidden(Exception):
    """The key may not see this page (a scope or collection it lacks)."""

    def __init__(self, message: str) -> None:
        self.message = message


def ui_key(request: Request, state: StateDep) -> ApiKey:
    """The signed-in key of a page request (GET: no CSRF token needed)."""
    if session_of(state, request) is None:
        raise SignInRequired(request.url.path)
    try:
        return session_key(state, request)
    except Problem as problem:
        if problem.status == 401:
            raise SignInRequired(request.url.path) from None
        raise


UiKey = Annotated[ApiKey, Depends(ui_key)]


def require_page_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise PageForbidden(f"This page needs an API key with the '{scope}' scope.")


def require_page_unrestricted(key: ApiKey) -> None:
    require_page_scope(key, "admin")
    if key.collections is not None:
        raise PageForbidden("This page needs an admin key that is not limited to collections.")


def render(
    request: Request,
    state: ServiceState,
    key: ApiKey | None,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page, with what the layout needs: the key (for the navigation and what it may
    do), the session's CSRF token for the page's scripts, and the current path."""
    session = session_of(state, request) if key is not None else None
    base = {
        "key": key,
        "csrf": session.csrf if session is not None else "",
        "nav": [
            (path, label)
            for path, label, scope, unrestricted in NAV
            if key is not None and may_see(key, scope, unrestricted)
        ],
        "path": request.url.path,
        "version": __version__,
    }
    return TEMPLATES.TemplateResponse(
        request, template, base | (context or {}), status_code=status_code
    )


def install_ui_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, error: SignInRequired) -> Response:
        return RedirectResponse(f"{UI_PATH}/login?next={quote(error.path)}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, error: PageForbidden) -> Response:
        state: ServiceState = request.app.state.facegate
        key = ui_key(request, state)
        return render(
            request,
            state,
            key,
            "error.html",
            {"title": "Not allowed", "message": error.message},
            403,
        )


class SecurityHeadersMiddleware:
    """Pure ASGI: the content security policy and friends on every page and static file."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(UI_PATH):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
