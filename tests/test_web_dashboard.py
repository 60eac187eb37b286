"""The sign-in page and the dashboard in a real browser (Debian's chromium): the counts
come from the gallery and the events table, the page works from the keyboard and on a
phone-sized screen, and the browser reports no error (a CSP violation would be one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import Site, serve_site, shoot, sign_in
from facegate.gallery.records import Event, new_id, utc_now
from helpers import CONSENT_JSON, lfw_photo


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Site]:
    with serve_site(tmp_path_factory.mktemp("web-dashboard")) as running:
        auth = {"Authorization": f"Bearer {running.admin}"}
        with httpx.Client(base_url=running.base, headers=auth, timeout=120) as api:
            assert api.post("/v1/collections", json={"name": "default"}).status_code == 201
            made = api.post(
                "/v1/collections/default/subjects",
                json={"name": "Colin Powell", "consent": CONSENT_JSON},
            )
            assert made.status_code == 201, made.text
            subject_id = made.json()["id"]
            photo = lfw_photo(faces_root, "Colin_Powell", 1)
            files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
            added = api.post(f"/v1/collections/default/subjects/{subject_id}/faces", files=files)
            assert added.status_code == 201, added.text
        store = running.state.store
        now = utc_now()
        for minutes, kind, subject in ((5, "identified", subject_id), (30, "unknown", None)):
            store.add_event(
                Event(
                    id=new_id(),
                    at=now - timedelta(minutes=minutes),
                    kind=kind,
                    camera="lobby",
                    collection_id="default",
                    subject_id=subject,
                    similarity=0.6 if subject else 0.2,
                    reason="3 of 3 shots agree" if subject else "none of 3 shots reached it",
                )
            )
        store.add_event(  # older than an hour: not counted, still a recent decision
            Event(id=new_id(), at=now - timedelta(hours=3), kind="unknown", camera="lobby")
        )
        yield running


def test_sign_in_then_the_dashboard_shows_the_gallery_and_events(site: Site, browser: Any) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(site.url("/ui/"))
    assert page.url.startswith(site.url("/ui/login"))
    shoot(page, "login")

    page.get_by_label("API key").fill("fg_nothing_wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That API key is unknown or revoked."
    assert errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    errors.clear()  # the refused sign-in answers 401, which the browser logs

    sign_in(page, site, site.admin)
    people = page.get_by_role("region", name="People enrolled")
    assert people.locator(".stat").inner_text() == "1"
    last_hour = page.get_by_role("region", name="Events, last hour")
    assert last_hour.locator(".stat").inner_text() == "2"
    rows = page.locator("section:has(h2:text('Recent decisions')) tbody tr")
    assert rows.count() == 3
    assert "Colin Powell" in rows.nth(0).inner_text()
    assert "unknown" in rows.nth(1).inner_text()
    assert page.get_by_role("link", name="Dashboard").get_attribute("aria-current") == "page"
    shoot(page, "dashboard")

    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the dashboard scrolls sideways on a phone ({width} px)"
    shoot(page, "dashboard-phone")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(site.url("/ui/login"))
    page.goto(site.url("/ui/"))
    assert page.url.startswith(site.url("/ui/login"))
    assert errors == []
