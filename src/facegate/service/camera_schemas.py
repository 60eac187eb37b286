"""Schemas of camera control: whether an admin wants each camera running or stopped."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Wanted = Literal["running", "stopped"]


class CameraControlPublic(BaseModel):
    """What an admin asked of one camera, and what its worker last reported."""

    name: str
    wanted: Wanted = Field(
        ..., description="running, or stopped by an admin (until started again)."
    )
    state: str = Field(
        ...,
        description="The worker's last reported state (as in GET /v1/cameras): the "
        "supervisor of `facegate serve` acts on a change within a few seconds.",
    )
    changed: bool = Field(
        False, description="Whether this request changed what is wanted (False: it already was)."
    )


class CameraControlList(BaseModel):
    items: list[CameraControlPublic]
