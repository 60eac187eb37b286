"""OpenAPI descriptions of the image endpoints, which read multipart or JSON themselves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from facegate.service.images import ImageField


def image_body(
    params: type[BaseModel], fields: tuple[ImageField, ...], example: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for an endpoint taking images as multipart parts or base64 JSON."""
    schema = params.model_json_schema()
    props: dict[str, Any] = dict(schema.get("properties", {}))
    required = list(schema.get("required", []))
    multipart: dict[str, Any] = {"type": "object", "properties": dict(props), "required": []}
    json_schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(props),
        "required": list(required),
        "additionalProperties": False,
    }
    for field in fields:
        binary = {"type": "string", "format": "binary"}
        encoded = {"type": "string", "contentEncoding": "base64"}
        if field.multiple:
            multipart["properties"][field.name] = {"type": "array", "items": binary}
            json_schema["properties"][field.json_name] = {"type": "array", "items": encoded}
        else:
            multipart["properties"][field.name] = binary
            json_schema["properties"][field.json_name] = encoded
        multipart["required"].append(field.name)
        json_schema["required"].append(field.json_name)
    multipart["required"] += required
    json_content: dict[str, Any] = {"schema": json_schema}
    if example is not None:
        json_content["example"] = example
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": json_content,
            },
        }
    }
