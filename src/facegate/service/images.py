"""Image input: multipart uploads or base64 in JSON, never a URL or a server path.

Each image endpoint names its image fields (``image``, ``images``, ``image_a``...) and a
pydantic model of its other parameters (``extra="forbid"``). Multipart carries the images
as file parts and the parameters as form fields; JSON carries ``<field>_base64`` strings
(a list for a multiple field) beside the parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from facegate.service.problems import Problem, validation_problem

P = TypeVar("P", bound=BaseModel)
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
MULTIPART = "multipart/form-data"
_BOUNDARY = re.compile(r'boundary="?([^";,\s]{1,70})"?', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    name: str  # the client's file name (base name only) or a label; never a path we open


@dataclass(frozen=True, slots=True)
class ImageField:
    name: str
    multiple: bool = False
    aliases: tuple[str, ...] = ()  # other multipart names accepted (``image`` for ``images``)

    @property
    def json_name(self) -> str:
        return f"{self.name}_base64"


def _clean_name(filename: str | None, fallback: str) -> str:
    if not filename:
        return fallback
    base = PureWindowsPath(PurePosixPath(filename).name).name
    return base[:200] or fallback


def decode_base64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise Problem(
            422, "validation-error", f"{field}: expected a base64 string", title="Invalid request"
        )
    compact = "".join(_DATA_URL.sub("", value.strip(), count=1).split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(
            400,
            "invalid-base64",
            f"{field} is not valid base64",
            title="Invalid base64",
            field=field,
        ) from None


def _params(model: type[P], data: dict[str, Any]) -> P:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_problem(list(error.errors())) from None


def _too_many(limit: int) -> Problem:
    return Problem(
        422,
        "too-many-images",
        f"at most {limit} images may be sent in one request",
        title="Too many images",
        limit=limit,
    )


async def read_images(
    request: Request, model: type[P], fields: tuple[ImageField, ...], max_images: int
) -> tuple[P, dict[str, list[Upload]]]:
    """The request's parameters and images, by field name; each field present."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == MULTIPART:
        params, images = await read_multipart(request, model, fields, max_images)
    elif media == "application/json" or media.endswith("+json"):
        params, images = await read_json(request, model, fields, max_images)
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            f"send images as {MULTIPART} or application/json with base64, "
            f"not {media or 'a body without a content type'}",
            title="Unsupported media type",
        )
    for field in fields:
        found = images.get(field.name, [])
        if not found:
            raise Problem(
                422,
                "validation-error",
                f"{field.name}: an image is required (multipart part {field.name!r} "
                f"or JSON {field.json_name!r})",
                title="Request validation failed",
            )
        if len(found) > 1 and not field.multiple:
            raise Problem(
                422,
                "validation-error",
                f"{field.name}: exactly one image is expected, got {len(found)}",
                title="Request validation failed",
            )
    if sum(len(v) for v in images.values()) > max_images:
        raise _too_many(max_images)
    return params, images


async def read_multipart(
    request: Request, model: type[P], fields: tuple[ImageField, ...], max_images: int
) -> tuple[P, dict[str, list[Upload]]]:
    by_name = {n: f for f in fields for n in (f.name, *f.aliases)}
    boundary = _BOUNDARY.search(request.headers.get("content-type", ""))
    if boundary is None:
        raise Problem(400, "malformed-body", "the multipart content type has no boundary")
    # The body is bounded by the upload limit; reading it first lets a truncated body (no
    # closing delimiter), which the streaming parser would take as complete, be refused.
    body = await request.body()
    close = b"--" + boundary.group(1).encode("latin-1") + b"--"
    if not (body.startswith(close) or b"\r\n" + close in body):
        raise Problem(
            400,
            "malformed-body",
            "the multipart body is truncated: its closing boundary is missing",
        )
    try:
        form = await request.form(max_files=max_images, max_fields=50)
    except StarletteHTTPException as error:
        detail = str(error.detail)
        if "Too many files" in detail:
            raise _too_many(max_images) from None
        raise Problem(
            400, "malformed-body", f"the multipart body could not be parsed: {detail}"
        ) from None
    images: dict[str, list[Upload]] = {}
    values: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                field = by_name.get(key)
                if field is None:
                    expected = ", ".join(sorted(by_name))
                    raise Problem(
                        422,
                        "validation-error",
                        f"unexpected file part {key!r}; image parts: {expected}",
                        title="Request validation failed",
                    )
                data = await value.read()
                images.setdefault(field.name, []).append(
                    Upload(data, _clean_name(value.filename, field.name))
                )
            elif key in values:
                raise Problem(
                    422,
                    "validation-error",
                    f"{key}: given more than once",
                    title="Request validation failed",
                )
            elif key in by_name:
                raise Problem(
                    422,
                    "validation-error",
                    f"{key}: must be a file part, not a text field",
                    title="Request validation failed",
                )
            else:
                values[key] = value
    finally:
        await form.close()
    return _params(model, values), images


async def read_json(
    request: Request, model: type[P], fields: tuple[ImageField, ...], max_images: int
) -> tuple[P, dict[str, list[Upload]]]:
    body = await request.body()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Problem(400, "malformed-body", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise Problem(
            422,
            "validation-error",
            "the JSON body must be an object",
            title="Request validation failed",
        )
    images: dict[str, list[Upload]] = {}
    for field in fields:
        for name in (field.json_name, *(f"{a}_base64" for a in field.aliases)):
            if name not in data:
                continue
            raw = data.pop(name)
            items = raw if isinstance(raw, list) and field.multiple else [raw]
            if len(items) > max_images:
                raise _too_many(max_images)
            for i, item in enumerate(items):
                label = f"{name}[{i}]" if isinstance(raw, list) else name
                images.setdefault(field.name, []).append(Upload(decode_base64(item, label), label))
    return _params(model, data), images
