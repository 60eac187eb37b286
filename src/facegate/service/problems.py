"""RFC 9457 problem details: every error answer is ``application/problem+json`` with a
stable ``type`` URI per kind of problem.

Library errors map through their stable ``FacegateError.code`` (``no_face`` becomes
``https://facegate.dev/problems/no-face``); the service adds its own kinds (auth, rate
limit, request bodies).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.errors import (
    ConfigError,
    FaceError,
    FacegateError,
    GalleryError,
    ImageError,
    ModelError,
)

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://facegate.dev/problems/"
PROBLEM_JSON = "application/problem+json"

# Status per library error code; codes not listed fall back by class (below).
STATUS_BY_CODE: dict[str, int] = {
    "image_too_large": 413,
    "unknown_collection": 404,
    "unknown_subject": 404,
    "unknown_template": 404,
    "unknown_key": 404,
    "duplicate_collection": 409,
    "duplicate_subject": 409,
    "ambiguous_subject": 409,
    "empty_gallery": 409,
    "model_mismatch": 409,
    "no_templates": 409,
    "model_not_found": 422,
    "model_integrity": 500,
    "consent_required": 422,
    "invalid_consent": 422,
    "ephemeral_collection": 409,
    "data_key": 500,
    "schema_mismatch": 500,
}
STATUS_BY_CLASS: tuple[tuple[type[FacegateError], int], ...] = (
    (ImageError, 422),
    (FaceError, 422),
    (GalleryError, 409),
    (ConfigError, 422),
    (ModelError, 500),
)
# Problem types of the HTTP layer, by status, for errors raised by FastAPI/Starlette.
SLUG_BY_STATUS: dict[int, str] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def slug_of(code: str) -> str:
    return code.replace("_", "-")


class Problem(Exception):
    """An error answer of the HTTP layer, raised anywhere in a request."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or slug.replace("-", " ").capitalize()
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(
            self.body(instance),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_JSON,
        )


def status_for(error: FacegateError) -> int:
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    for kind, status in STATUS_BY_CLASS:
        if isinstance(error, kind):
            return status
    return 500


def from_facegate(error: FacegateError, **extra: Any) -> Problem:
    """The problem for a library error, with its structured details (reasons, count)."""
    extensions: dict[str, Any] = dict(extra)
    reasons = getattr(error, "reasons", None)
    if reasons is not None:
        extensions["reasons"] = list(reasons)
    quality = getattr(error, "quality", None)
    if isinstance(quality, float):
        extensions["quality"] = quality
    count = getattr(error, "count", None)
    if isinstance(count, int):
        extensions["count"] = count
    return Problem(status_for(error), slug_of(error.code), str(error), **extensions)


def validation_problem(errors: list[Any]) -> Problem:
    """422 from pydantic errors, without echoing the input (it may be a base64 image)."""
    cleaned = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
    first = cleaned[0] if cleaned else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p != "body") or "request"
    return Problem(
        422,
        "validation-error",
        f"{where}: {first['msg']}",
        title="Request validation failed",
        errors=cleaned,
    )


def install_handlers(app: FastAPI) -> None:
    """Turn every error into problem+json, FastAPI's own 404/405/422 included."""

    def path_of(request: Request) -> str:
        return request.url.path

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return exc.response(path_of(request))

    async def on_facegate(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FacegateError)
        problem = from_facegate(exc)
        if problem.status >= 500:
            log.error("%s on %s: %s", exc.code, path_of(request), exc)
        return problem.response(path_of(request))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return validation_problem(list(exc.errors())).response(path_of(request))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        slug = SLUG_BY_STATUS.get(status, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else None
        headers = dict(exc.headers or {})
        return Problem(status, slug, detail, title=title, headers=headers).response(
            path_of(request)
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", path_of(request))
        problem = Problem(500, "internal-error", "an unexpected error occurred; see the server log")
        return problem.response(path_of(request))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(FacegateError, on_facegate)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(ValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
