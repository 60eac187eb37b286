"""A real browser for the web UI tests: Debian's chromium driven by Playwright (Python),
never a downloaded browser, against a real ``facegate serve`` app (``create_site``) on a
loopback port.

Screenshots go to ``artifacts/screenshots/`` at the top of the checkout (or
``$FACEGATE_ARTIFACTS/screenshots``): CI keeps them, and people look at them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facegate.config import ServiceSettings, Settings
from facegate.service.state import BOOTSTRAP_KEY_FILE
from facegate.web.site import create_site
from helpers import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = "Debian's chromium is not installed (apt-get install chromium; ./run test does)"
# As the machine's notes say: without these, chromium tries the network at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The webcam page: a fake camera device that plays a test pattern (no camera here).
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
ROOT = Path(__file__).resolve().parents[1]


def screenshot_dir() -> Path:
    base = Path(os.environ.get("FACEGATE_ARTIFACTS", ROOT / "artifacts"))
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> Path:
    """The browser, or a skip (a failure under CI, which installs it)."""
    found = CHROMIUM if CHROMIUM.is_file() else None
    if found is None and (which := shutil.which("chromium")):
        found = Path(which)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(CHROMIUM_MISSING)
        pytest.skip(CHROMIUM_MISSING)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed (pip install -e '.[dev]')")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return found


@contextlib.contextmanager
def browser_session() -> Iterator[Any]:
    """A headless chromium (Playwright ``Browser``)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Site:
    """A running service with its UI, and the bootstrap admin key's secret."""

    base: str
    admin: str
    data_dir: Path
    app: Any

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def state(self) -> Any:
        return self.app.state.facegate


@contextlib.contextmanager
def serve_site(data_dir: Path, **settings: Any) -> Iterator[Site]:
    config = Settings(data_dir=data_dir, service=ServiceSettings(rate_limit=0), **settings)
    app = create_site(config)
    with running_server(config, app) as base:
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        yield Site(base, admin, data_dir, app)


def sign_in(page: Any, site: Site, secret: str) -> None:
    """Sign in through the form, as a person would."""
    page.goto(site.url("/ui/login"))
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url("/ui/"))


def shoot(page: Any, name: str) -> Path:
    """A full-page PNG of what the browser shows now."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"screenshot {name} is suspiciously small"
    return path


class Pages:
    """New pages for a test, each in a context of its own (cookies apart); every page's
    console errors and uncaught exceptions are kept in ``errors``."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.errors: list[str] = []
        self.contexts: list[Any] = []

    def new(self, viewport: dict[str, int] | None = None) -> Any:
        context = self.browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        return page

    def signed_in(self, site: Site, secret: str, viewport: dict[str, int] | None = None) -> Any:
        page = self.new(viewport)
        sign_in(page, site, secret)
        return page

    def close(self) -> None:
        for context in self.contexts:  # their event streams end with them
            context.close()
