"""Placeholder: this page is being built (issue 8)."""

from __future__ import annotations

from fastapi import APIRouter

from facegate.web.ui import UI_PATH

router = APIRouter(prefix=UI_PATH, include_in_schema=False)
