"""Signing in with an API key, and out.

The sign-in form carries a one-time token that must match a cookie set with the form
(double submit), so another site cannot sign a browser in with a key of its choosing."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from facegate.service.deps import StateDep
from facegate.service.sessions import close_session, csrf_matches, open_session, session_of
from facegate.web.ui import UI_PATH, render

router = APIRouter(prefix=UI_PATH, include_in_schema=False)
LOGIN_COOKIE = "facegate_login"


def _local(next_path: str | None) -> str:
    """Only a path of this UI: never an address elsewhere (an open redirect)."""
    if next_path and next_path.startswith(f"{UI_PATH}/") and "//" not in next_path:
        return next_path
    return f"{UI_PATH}/"


def _form(
    request: Request, state: StateDep, next_path: str, error: str | None, status: int
) -> Response:
    token = secrets.token_urlsafe(24)
    page = render(
        request,
        state,
        None,
        "login.html",
        {"login_token": token, "next": next_path, "error": error},
        status,
    )
    page.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=900,
        path=f"{UI_PATH}/login",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return page


@router.get("/login")
def login_page(request: Request, state: StateDep, next: str | None = None) -> Response:
    return _form(request, state, _local(next), None, 200)


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    api_key: Annotated[str, Form(max_length=300)] = "",
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = _local(next)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
        return _form(request, state, target, "The form expired; please sign in again.", 400)
    secret = api_key.strip()
    key = await anyio.to_thread.run_sync(state.keys.authenticate, secret) if secret else None
    if key is None:
        await anyio.to_thread.run_sync(
            lambda: state.audit.append("ui.sign_in", "unauthorized", detail={"via": "web"})
        )
        return _form(request, state, target, "That API key is unknown or revoked.", 401)
    done = RedirectResponse(target, status_code=303)
    await anyio.to_thread.run_sync(open_session, state, request, done, key)
    await anyio.to_thread.run_sync(
        lambda: state.audit.append("ui.sign_in", "ok", key_id=key.id, detail={"via": "web"})
    )
    done.delete_cookie(LOGIN_COOKIE, path=f"{UI_PATH}/login")
    return done


@router.post("/logout")
async def logout(
    request: Request, state: StateDep, csrf: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    session = session_of(state, request)
    done = RedirectResponse(f"{UI_PATH}/login", status_code=303)
    if session is not None and csrf_matches(session, csrf):
        await anyio.to_thread.run_sync(close_session, state, request, done)
        await anyio.to_thread.run_sync(
            lambda: state.audit.append("ui.sign_out", "ok", key_id=session.key_id)
        )
    elif session is not None:
        return RedirectResponse(f"{UI_PATH}/", status_code=303)  # a forged sign-out
    return done
