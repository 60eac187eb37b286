"""The monitoring pages in a real browser (Debian's chromium): events (listed, filtered,
and new ones arriving live over Server-Sent Events), cameras (health from the status
files the workers write, the last snapshot with its face box, stop and start) and the
audit trail (its chain verdict, filters, admins only). No page may log a browser error:
a Content Security Policy violation would be one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import text, update

from browser import Pages, Site, serve_site, shoot
from facegate.events.camera_status import CameraStatus, write_status
from facegate.gallery.records import Event, new_id, utc_now
from facegate.gallery.tables import audit_log
from helpers import CONSENT_JSON, lfw_photo

PHONE = {"width": 390, "height": 844}
CAMERAS = [
    {"name": "door", "source": "rtsp://viewer:pw-door-9@10.0.0.5/main", "collection": "lobby"},
    {"name": "hall", "source": "rtsp://10.0.0.6/main", "collection": "lobby"},
]
ABEL, AKHMED = "Abel Pacheco", "Akhmed Zakayev"
TRIGGER = (  # as migration 0001 makes it, for SQLite
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
)


@dataclass
class Monitored(Site):
    people: dict[str, str] = field(default_factory=dict)  # name -> subject id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Monitored]:
    data_dir = tmp_path_factory.mktemp("web-monitoring")
    with serve_site(data_dir, cameras=CAMERAS, events={"snapshots": True}) as running:
        with httpx.Client(base_url=running.base, headers=admin(running), timeout=60) as api:
            assert api.post("/v1/collections", json={"name": "lobby"}).status_code == 201
            people = {}
            for name in (ABEL, AKHMED):
                made = api.post(
                    "/v1/collections/lobby/subjects", json={"name": name, "consent": CONSENT_JSON}
                )
                assert made.status_code == 201, made.text
                people[name] = made.json()["id"]
        now = utc_now()
        photo = lfw_photo(faces_root, "Abel_Pacheco", 1).read_bytes()  # the face centred
        for minutes, kind, camera, who, more in (
            (12, "track_started", "door", None, {}),
            (12, "identified", "door", ABEL, {"similarity": 0.71, "snapshot": photo}),
            (11, "track_ended", "door", None, {}),
            (9, "unknown", "hall", None, {"reason": "none of 9 shots reached the threshold"}),
            (6, "access", "door", ABEL, {"door": "front", "reason": "allowed"}),
            (5, "access", "door", AKHMED, {"door": "front", "reason": "not_in_group"}),
            (3, "quota", "hall", AKHMED, {"quota": "coffee", "reason": "within_limit"}),
            (2, "identified", "hall", AKHMED, {"similarity": 0.64}),
        ):
            record(
                running,
                kind,
                camera,
                people.get(who or ""),
                now - timedelta(minutes=minutes),
                **more,
            )
        yield Monitored(**vars(running), people=people)


def admin(site: Site) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.admin}"}


def record(
    site: Site, kind: str, camera: str, subject: str | None, at: Any = None, **more: Any
) -> Event:
    """An event recorded as a camera worker records it (a track id, a quality)."""
    event = Event(
        new_id(), at or utc_now(), kind, camera, "lobby", subject, track_id=4, quality=0.8, **more
    )
    site.state.store.add_event(event)
    return event


def make_key(site: Site, scopes: list[str], collections: list[str] | None = None) -> str:
    made = httpx.post(
        site.url("/v1/keys"),
        json={"name": "+".join(scopes), "scopes": scopes, "collections": collections},
        headers=admin(site),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


# --- a browser whose pages report every error -------------------------------------------------
@pytest.fixture()
def pages(site: Site, browser: Any) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
    assert opened.errors == [], "the browser reported errors"


def row_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator("#events tbody tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    return ids


def column(page: Any, index: int) -> list[str]:
    texts: list[str] = page.locator(
        f"#events tbody tr[data-id] td:nth-child({index})"
    ).all_inner_texts()
    return texts


# --- events --------------------------------------------------------------------------------------
def test_events_are_listed_and_new_ones_arrive_live(site: Monitored, pages: Pages) -> None:
    page = pages.signed_in(site, site.admin)
    page.goto(site.url("/ui/events"))
    assert len(row_ids(page)) == 8
    assert column(page, 4)[0] == AKHMED  # newest first
    live = page.locator("#live-state")
    live.filter(has_text="Live").wait_for()

    event = record(site, "identified", "door", site.people[ABEL], similarity=0.77)
    page.locator(f'#events tr[data-id="{event.id}"]').wait_for(timeout=10_000)
    assert row_ids(page)[0] == event.id  # on top
    first = page.locator("#events tbody tr").first
    assert first.locator("td").nth(3).inner_text() == ABEL
    assert first.locator("td").nth(4).inner_text() == "match · similarity 0.77"
    news = page.get_by_role("status").filter(has_text="New event")
    news.wait_for()
    assert f"{ABEL}: identified at door" in news.inner_text()
    shoot(page, "events")

    # Paused: new events wait (announced) and join the table when resumed.
    page.get_by_role("button", name="Pause live updates").click()
    assert (
        page.get_by_role("button", name="Resume live updates").get_attribute("aria-pressed")
        == "true"
    )
    held = record(site, "unknown", "hall", None, reason="shots named 2 different people")
    page.get_by_text("Paused: 1 new event waiting.").wait_for(timeout=10_000)
    assert held.id not in row_ids(page)
    page.get_by_role("button", name="Resume live updates").click()
    assert row_ids(page)[0] == held.id
    page.get_by_text("Resumed: 1 event added.").wait_for()

    phone = pages.signed_in(site, site.admin, PHONE)
    phone.goto(site.url("/ui/events"))
    phone.locator("#live-state").filter(has_text="Live").wait_for()
    shoot(phone, "events-phone")


def test_filters_narrow_the_list_and_the_live_feed(site: Site, pages: Pages) -> None:
    page = pages.signed_in(site, site.admin)
    page.goto(site.url("/ui/events"))
    page.get_by_label("Camera").select_option("hall")
    page.get_by_role("button", name="Show events").click()
    page.wait_for_url("**/ui/events?camera=hall*")
    assert set(column(page, 2)) == {"hall"} and len(column(page, 2)) >= 3

    page.goto(site.url("/ui/events"))
    page.get_by_label("Outcome").select_option(label="Access denied")
    page.get_by_role("button", name="Show events").click()
    assert column(page, 5) == ["denied · not in group"]
    assert column(page, 4) == [AKHMED]

    page.goto(site.url("/ui/events"))
    page.get_by_label("Person").fill(ABEL)  # a name seen, or a subject id
    page.get_by_role("button", name="Show events").click()
    assert set(column(page, 4)) == {ABEL} and len(column(page, 4)) >= 2

    # A time range that ends is history: listed, nothing live.
    page.goto(site.url("/ui/events?until=2000-01-01T00:00"))
    assert row_ids(page) == [] and page.locator("#feed").count() == 0
    page.get_by_text("Live updates are off").wait_for()

    # Live, the filters hold: a hall page hears nothing from the door.
    page.goto(site.url("/ui/events?camera=hall&outcome=unknown"))
    page.locator("#live-state").filter(has_text="Live").wait_for()
    elsewhere = record(site, "unknown", "door", None)
    other_kind = record(site, "track_started", "hall", None)
    wanted = record(site, "unknown", "hall", None, reason="no shot of usable quality")
    page.locator(f'#events tr[data-id="{wanted.id}"]').wait_for(timeout=10_000)
    shown = row_ids(page)
    assert elsewhere.id not in shown and other_kind.id not in shown


# --- audit ---------------------------------------------------------------------------------------
def test_the_audit_page_shows_the_chain_and_the_entries(site: Site, pages: Pages) -> None:
    page = pages.signed_in(site, site.admin)
    page.goto(site.url("/ui/audit"))
    assert page.get_by_role("heading", name="Chain intact").is_visible()
    actions = page.locator("table.audit tbody td:nth-child(3)").all_inner_texts()
    assert "collection.create" in actions and "key.create" in actions
    shoot(page, "audit")

    page.get_by_label("Action").fill("subject.create")
    page.get_by_role("button", name="Show entries").click()
    actions = page.locator("table.audit tbody td:nth-child(3)").all_inner_texts()
    assert actions == ["subject.create", "subject.create"]

    # One entry altered behind the service's back (by someone with the database file, who
    # can drop the trigger that makes it append-only): the page says where, as an alert.
    engine = site.state.store.engine
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        original = conn.execute(audit_log.select().where(audit_log.c.seq == 2)).one()
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(outcome="tampered"))
    try:
        page.goto(site.url("/ui/audit"))
        alert = page.get_by_role("alert")
        assert "Chain broken at entry #2" in alert.inner_text()
        alert.get_by_role("link").click()
        assert page.locator("table.audit tr.broken td").first.inner_text() == "2"
        shoot(page, "audit-broken")
    finally:  # the chain mended, for the other tests
        with engine.begin() as conn:
            conn.execute(
                update(audit_log).where(audit_log.c.seq == 2).values(outcome=original.outcome)
            )
            conn.execute(text(TRIGGER))
    page.goto(site.url("/ui/audit"))
    assert page.get_by_role("heading", name="Chain intact").is_visible()


def test_audit_is_for_unrestricted_admins_only(site: Site, pages: Pages) -> None:
    for secret in (make_key(site, ["read"]), make_key(site, ["admin"], ["lobby"])):
        page = pages.signed_in(site, secret)
        answer = page.goto(site.url("/ui/audit"))
        assert answer is not None and answer.status == 403
        assert page.get_by_role("heading", name="Not allowed").is_visible()
    # The reader's navigation does not offer it at all.
    reader = pages.signed_in(site, make_key(site, ["read"]))
    assert (
        reader.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").count() == 0
    )
    # The 403 answers themselves are logged by the browser; nothing else may be.
    assert all("403" in e for e in pages.errors)
    pages.errors.clear()


# --- cameras -------------------------------------------------------------------------------------
def door_status(state: str, **counts: Any) -> CameraStatus:
    return CameraStatus("door", "rtsp://viewer:***@10.0.0.5/main", "lobby", state, **counts)


def test_the_cameras_page_shows_health_snapshot_and_controls(site: Site, pages: Pages) -> None:
    directory = site.state.settings.camera_status_dir
    running = door_status(
        "streaming",
        pid=4242,
        fps=14.8,
        decoded=5400,
        analysed=2700,
        skipped=2690,
        dropped=10,
        reconnects=1,
        active_tracks=2,
        events={"identified": 3, "unknown": 1, "track_started": 4},
    )
    write_status(directory, running)
    page = pages.signed_in(site, site.admin)
    page.goto(site.url("/ui/cameras"))
    door = page.locator('article[data-camera="door"]')
    hall = page.locator('article[data-camera="hall"]')
    assert door.locator(".condition").inner_text() == "up"
    assert "14.8 frames/s" in door.inner_text() and "10 dropped" in door.inner_text()
    assert "identified 3 · track started 4 · unknown 1" in door.inner_text()
    assert "pw-door-9" not in page.content()
    # No supervisor runs here: the hall camera never reported, and the page says so.
    assert hall.locator(".condition").inner_text() == "starting"
    assert "no report from its worker yet" in hall.inner_text()
    # The snapshot (an admin may see it) is drawn at its own size, 250 x 250 for LFW.
    # (Not wait_for_function: it evaluates a string, which the page's CSP forbids.)
    expect(door.locator("canvas")).to_have_attribute("width", "250")
    assert "Abel Pacheco" in door.locator("canvas").get_attribute("aria-label")
    shoot(page, "cameras")

    door.get_by_role("button", name="Stop door").click()
    door.get_by_role("status").filter(has_text="the camera follows").wait_for()
    assert door.get_by_role("button", name="Start door").is_visible()
    control = httpx.get(site.url("/v1/cameras/control"), headers=admin(site), timeout=30).json()
    assert {c["name"]: c["wanted"] for c in control["items"]} == {
        "door": "stopped",
        "hall": "running",
    }
    door.locator(".condition").filter(has_text="stop requested").wait_for(timeout=10_000)
    # The supervisor stops the worker, which reports it: the page follows by itself.
    write_status(directory, door_status("stopped"))
    door.locator(".condition").filter(has_text="stopped").wait_for(timeout=10_000)
    page.get_by_text("Camera door is now stopped.").wait_for()
    door.get_by_role("button", name="Start door").click()
    door.get_by_role("button", name="Stop door").wait_for()
    audit = httpx.get(
        site.url("/v1/audit"), params={"action": "camera.stop"}, headers=admin(site), timeout=30
    ).json()["items"]
    assert [(r["outcome"], r["detail"]["camera"]) for r in audit] == [("ok", "door")]


def test_cameras_for_a_reader_box_and_name_but_no_photo_and_no_controls(
    site: Site, pages: Pages
) -> None:
    page = pages.signed_in(site, make_key(site, ["read"]))
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(site.url("/ui/cameras"))
    door = page.locator('article[data-camera="door"]')
    assert door.locator("canvas").get_attribute("data-image") is None
    assert "shown to admins only" in door.inner_text()
    assert page.get_by_role("button", name="Stop door").count() == 0
    page.wait_for_timeout(500)
    assert not [url for url in asked if "/snapshot" in url]
    shoot(page, "cameras-reader")
