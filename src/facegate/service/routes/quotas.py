"""Placeholder: the quotas routes are being built (issue 7)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
