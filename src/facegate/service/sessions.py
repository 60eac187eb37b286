"""Signing in to the web UI with an API key: a session cookie that the REST API accepts
too, so the UI's pages call the same documented endpoints, with the same scopes, audit
and errors, as any other client.

The cookie (``facegate_session``) is HttpOnly and SameSite=Strict, Secure over HTTPS.
A request authenticated by it that changes anything (any method but GET, HEAD, OPTIONS)
must also carry the session's CSRF token, in the ``X-CSRF-Token`` header (the UI's
scripts read it from the page) or, for plain forms, in the ``csrf`` field: another site
can make a browser send the cookie, but cannot read the token."""

from __future__ import annotations

import hmac
from datetime import timedelta

from fastapi import Request, Response

from facegate.gallery.keys import ApiKey, UnknownKeyError
from facegate.gallery.sessions import UiSession
from facegate.service.auth import charge, unauthorized
from facegate.service.problems import Problem
from facegate.service.state import ServiceState

SESSION_COOKIE = "facegate_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_of(state: ServiceState, request: Request) -> UiSession | None:
    """The request's live session, if its cookie names one."""
    token = request.cookies.get(SESSION_COOKIE)
    return state.sessions.get(token) if token else None


def csrf_matches(session: UiSession, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf.encode(), sent.encode())


def session_key(state: ServiceState, request: Request, form_csrf: str | None = None) -> ApiKey:
    """The key a signed-in browser acts with, charged to its rate limit. 401 without a
    live session or when its key was revoked; 403 ``csrf-failed`` for a change without
    the session's CSRF token."""
    session = session_of(state, request)
    if session is None:
        raise unauthorized("sign in again: the session is unknown or has expired")
    try:
        key = state.keys.get(session.key_id)
    except UnknownKeyError:
        key = None
    if key is None or not key.active:
        raise unauthorized("the API key of this session was revoked")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER) or form_csrf
        if not csrf_matches(session, sent):
            raise Problem(
                403,
                "csrf-failed",
                f"a change from a signed-in browser needs the page's CSRF token "
                f"({CSRF_HEADER} header)",
                title="Forbidden",
            )
    return charge(state, key)


def open_session(state: ServiceState, request: Request, response: Response, key: ApiKey) -> None:
    """Sign ``key`` in: a new session and its cookie on ``response``."""
    hours = state.settings.service.session_hours
    token = state.sessions.open(key.id, timedelta(hours=hours))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(hours * 3600),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def close_session(state: ServiceState, request: Request, response: Response) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        state.sessions.close(token)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
