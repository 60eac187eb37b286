"""The People, person, enrollment and Identify pages in a real browser (Debian's chromium)
against a real ``facegate serve`` app: enroll with consent and photos checked one by one,
find, identify, erase; the quality feedback on a faceless photo and on the webcam (the
browser's fake camera shows a test pattern, no face); what a read-only key may not do.
Every page is checked for browser errors (a CSP violation would be one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from playwright.sync_api import expect

from browser import (
    CHROMIUM_ARGS,
    Pages,
    Site,
    chromium_path,
    serve_site,
    shoot,
    sign_in,
)
from facegate.policy.quota import QuotaDefinition
from facegate.service.schemas import LegalBasis
from facegate.web.pages.people import LEGAL_BASES, PAGE_SIZE, QuotaUse, quota_use, span
from helpers import CONSENT_JSON, lfw_photo, problem

PHONE = {"width": 390, "height": 844}
PERSON = "Colin_Powell"
STRANGER = "Salma_Hayek"  # never enrolled here


# --- a browser whose pages report every error -------------------------------------------------
@pytest.fixture()
def pages(browser: Any) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
    assert opened.errors == [], "the browser reported errors"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A site with an empty collection "default" (the full flow has a fresh site)."""
    with serve_site(tmp_path_factory.mktemp("web-people")) as running:
        with api_as(running) as api:
            made = api.post("/v1/collections", json={"name": "default"})
            assert made.status_code == 201, made.text
        yield running


def api_as(site: Site, secret: str | None = None) -> httpx.Client:
    """The REST API with a key's secret (default: the bootstrap admin key)."""
    auth = {"Authorization": f"Bearer {secret or site.admin}"}
    return httpx.Client(base_url=site.base, headers=auth, timeout=120)


def make_key(site: Site, scopes: list[str]) -> str:
    with api_as(site) as api:
        made = api.post("/v1/keys", json={"name": "ui " + "+".join(scopes), "scopes": scopes})
    assert made.status_code == 201, made.text
    secret: str = made.json()["secret"]
    return secret


def people_named(site: Site, name: str) -> list[dict[str, Any]]:
    with api_as(site) as api:
        found = api.get("/v1/collections/default/subjects", params={"name": name})
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def fill_person_and_consent(page: Any, name: str, *, agree: bool) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Legal basis").select_option(CONSENT_JSON["legal_basis"])
    page.get_by_label("Notice version shown").fill(CONSENT_JSON["notice_version"])
    if agree:
        page.get_by_label("The person has read this notice").check()


def wait_for_text(page: Any, selector: str, text: str) -> None:
    page.locator(selector, has_text=text).first.wait_for(timeout=60_000)


def no_sideways_scroll(page: Any, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what} scrolls sideways on a phone ({width} px)"


# --- the whole story --------------------------------------------------------------------------
def test_enroll_find_identify_and_erase_a_person(
    pages: Pages, faces_root: Path, tmp_path: Path
) -> None:
    with serve_site(tmp_path / "fresh") as fresh:
        page = pages.new()
        sign_in(page, fresh, fresh.admin)

        # A fresh install: no collection yet; enrolling offers to create one.
        page.goto(fresh.url("/ui/people"))
        assert page.get_by_role("heading", name="No one enrolled yet").is_visible()
        page.get_by_role("link", name="Enroll the first person").click()
        assert page.get_by_label("Collection name").input_value() == "default"
        page.get_by_role("button", name="Create the collection").click()
        page.locator("form#enroll").wait_for()

        fill_person_and_consent(page, "Colin Powell", agree=True)
        page.get_by_label("External id").fill("emp-0001")
        photos = [lfw_photo(faces_root, PERSON, n) for n in (1, 2)]
        page.get_by_label("Upload photos").set_input_files([str(p) for p in photos])
        wait_for_text(page, "#photos-summary", "2 usable.")
        for row in page.locator("#photos li").all():
            assert row.get_attribute("class") == "usable"
            assert "Face found, quality" in row.inner_text()
        shoot(page, "enroll")

        page.get_by_role("button", name="Enroll", exact=True).click()
        page.wait_for_url(fresh.url("/ui/people/default/**"))
        assert page.get_by_role("heading", level=1).inner_text() == "Colin Powell"
        assert page.locator("#flash").inner_text() == "Colin Powell was enrolled with 2 photos."
        templates = page.locator("section:has(#templates) tbody tr")
        assert templates.count() == 2
        assert {templates.nth(i).locator("td").nth(2).inner_text() for i in range(2)} == {
            p.name for p in photos
        }
        consent = page.locator("section:has(#consent)").inner_text()
        assert "active" in consent and "explicit consent" in consent
        assert CONSENT_JSON["notice_version"] in consent and "emp-0001" in page.inner_text("main")
        shoot(page, "person")

        # Export: the API's JSON, downloaded through a Blob (the API needs the cookie).
        with page.expect_download() as download:
            page.get_by_role("button", name="Export as JSON").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert exported["subject"]["display_name"] == "Colin Powell"
        assert len(exported["templates"]) == 2 and "embedding" not in json.dumps(exported)

        # One template deleted, after the browser's confirmation.
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name=f"Delete the template from {photos[0].name}").click()
        expect(templates).to_have_count(1)
        assert photos[1].name in templates.inner_text()

        # Listed, and found by a part of the name.
        page.goto(fresh.url("/ui/people"))
        assert page.get_by_role("link", name="Colin Powell").is_visible()
        page.get_by_label("Name contains").fill("powel")
        page.get_by_role("button", name="Search").click()
        assert page.get_by_role("heading", name="1 person found").is_visible()
        shoot(page, "people")

        identify = fresh.url("/ui/identify")
        page.goto(identify)
        page.get_by_label("Photo", exact=True).set_input_files(
            str(lfw_photo(faces_root, PERSON, 3))
        )
        page.get_by_role("button", name="Identify").click()
        wait_for_text(page, "#identify-result", "recognised: Colin Powell")
        answer = page.locator("#identify-faces tr").first
        assert answer.get_by_role("link", name="Colin Powell").is_visible()
        assert "FMR 0.001" in answer.inner_text()
        assert page.evaluate("document.getElementById('identify-canvas').width") == 250
        shoot(page, "identify")

        page.get_by_label("Photo", exact=True).set_input_files(
            str(lfw_photo(faces_root, STRANGER, 1))
        )
        page.get_by_role("button", name="Identify").click()
        wait_for_text(page, "#identify-result", "1 face; 1 unknown.")
        stranger = page.locator("#identify-faces tr").first
        assert "unknown" in stranger.inner_text()
        assert stranger.get_by_role("link").count() == 0
        shoot(page, "identify-unknown")

        # Erase, from the person's page, after a confirmation step.
        page.goto(identify)
        page.get_by_label("Photo", exact=True).set_input_files(
            str(lfw_photo(faces_root, PERSON, 4))
        )
        page.get_by_role("button", name="Identify").click()
        page.locator("#identify-faces").get_by_role("link", name="Colin Powell").click()
        page.get_by_role("button", name="Erase Colin Powell…").click()
        confirm = page.get_by_role("button", name="Yes, erase permanently")
        assert confirm.is_visible() and confirm.evaluate("b => b === document.activeElement")
        shoot(page, "person-erase")
        confirm.click()
        page.wait_for_url(fresh.url("/ui/people?collection=default"))
        assert page.locator("#flash").inner_text().startswith("Colin Powell was erased")
        assert page.get_by_role("link", name="Colin Powell").count() == 0
        assert page.get_by_text("No one is enrolled in default yet.").is_visible()
        page.get_by_label("Name contains").fill("Colin")
        page.get_by_role("button", name="Search").click()
        assert page.get_by_text("No one in default matches this search.").is_visible()
        assert people_named(fresh, "Colin") == []


def test_the_phone_layout_of_the_people_pages(site: Site, pages: Pages) -> None:
    page = pages.new(PHONE)
    sign_in(page, site, site.admin)
    with api_as(site) as api:
        for name in ("Ada Lovelace", "Grace Hopper"):
            made = api.post(
                "/v1/collections/default/subjects",
                json={
                    "name": name,
                    "external_id": name.split()[0].lower(),
                    "consent": CONSENT_JSON,
                },
            )
            assert made.status_code == 201, made.text
    page.goto(site.url("/ui/people"))
    assert page.get_by_role("link", name="Grace Hopper").is_visible()
    no_sideways_scroll(page, "the people list")
    shoot(page, "people-phone")
    page.get_by_role("link", name="Ada Lovelace").click()
    assert "No templates" in page.locator("section:has(#templates)").inner_text()
    no_sideways_scroll(page, "a person's page")
    shoot(page, "person-phone")
    page.goto(site.url("/ui/people/new"))
    no_sideways_scroll(page, "the enrollment page")
    shoot(page, "enroll-phone")
    page.goto(site.url("/ui/people?external_id=grace"))
    assert page.get_by_role("heading", name="1 person found").is_visible()
    assert page.get_by_role("link", name="Grace Hopper").is_visible()


def test_the_list_comes_in_pages(site: Site, pages: Pages) -> None:
    with api_as(site) as api:  # a collection of its own: the other tests' lists stay short
        assert api.post("/v1/collections", json={"name": "paged"}).status_code == 201
        for n in range(PAGE_SIZE + 1):
            body = {"name": f"Paged Person {n:02d}", "consent": CONSENT_JSON}
            made = api.post("/v1/collections/paged/subjects", json=body)
            assert made.status_code == 201, made.text
    page = pages.new()
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/people?collection=paged&name=paged+person"))
    assert page.get_by_role("heading", name=f"{PAGE_SIZE + 1} people found").is_visible()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    pager = page.get_by_role("navigation", name="Pages")
    assert f"1 to {PAGE_SIZE} of {PAGE_SIZE + 1}" in pager.inner_text()
    assert pager.get_by_role("link", name="Previous").count() == 0
    pager.get_by_role("link", name="Next").click()
    expect(rows).to_have_count(1)
    assert f"{PAGE_SIZE + 1} to {PAGE_SIZE + 1} of {PAGE_SIZE + 1}" in pager.inner_text()
    assert page.get_by_label("Name contains").input_value() == "paged person"
    pager.get_by_role("link", name="Previous").click()
    expect(rows).to_have_count(PAGE_SIZE)


# --- the person's page changes what the API can change ----------------------------------------
def test_edit_add_photos_and_record_or_withdraw_consent(
    site: Site, pages: Pages, faces_root: Path
) -> None:
    with api_as(site) as api:
        taken = {"name": "Someone Else", "external_id": "emp-taken", "consent": CONSENT_JSON}
        assert api.post("/v1/collections/default/subjects", json=taken).status_code == 201
        body = {"name": "Colin Powell", "external_id": "emp-0100", "consent": CONSENT_JSON}
        made = api.post("/v1/collections/default/subjects", json=body)
        assert made.status_code == 201, made.text
        subject_id = made.json()["id"]
        photos = [lfw_photo(faces_root, PERSON, n) for n in (1, 2)]
        files = [("images", (p.name, p.read_bytes())) for p in photos]
        added = api.post(f"/v1/collections/default/subjects/{subject_id}/faces", files=files)
        assert added.status_code == 201, added.text
    page = pages.new()
    sign_in(page, site, site.admin)
    page.goto(site.url(f"/ui/people/default/{subject_id}"))
    templates = page.locator("section:has(#templates) tbody tr")
    expect(templates).to_have_count(2)

    # Edit: a conflicting external id is refused with the API's words; a rename is saved.
    edit = page.locator("form#edit")
    edit.get_by_label("External id").fill("emp-taken")
    edit.get_by_role("button", name="Save").click()
    wait_for_text(page, "form#edit .result", "already exists")
    assert page.get_by_role("heading", level=1).inner_text() == "Colin Powell"
    conflict = "Failed to load resource: the server responded with a status of 409 (Conflict)"
    assert pages.errors == [conflict]  # the refused PATCH, which the browser logs
    pages.errors.clear()
    edit.get_by_label("Name", exact=True).fill("Colin L. Powell")
    edit.get_by_label("External id").fill("emp-0101")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Colin L. Powell")
    assert page.locator("#flash").inner_text() == "Saved: Colin L. Powell."
    assert "emp-0101" in page.locator("section:has(#facts) dl").inner_text()

    # A third photo, checked like at enrollment, then added.
    third = lfw_photo(faces_root, PERSON, 3)
    page.get_by_label("Upload photos").set_input_files(str(third))
    wait_for_text(page, "#photos-summary", "1 usable.")
    assert "Face found, quality" in page.locator("#photos li.usable").inner_text()
    page.get_by_role("button", name="Add the photos").click()
    expect(templates).to_have_count(3)
    assert page.locator("#flash").inner_text() == "1 photo was added."
    assert third.name in page.locator("section:has(#templates) tbody").inner_text()

    # A new consent record, listed with the first.
    consent = page.locator("section:has(#consent)")
    consent.get_by_label("Legal basis").select_option("written_release")
    consent.get_by_label("Notice version shown").fill("notice-2026")
    consent.get_by_label("Consent expires").fill("2031-01-31")
    consent.get_by_label("The person has read this notice").check()
    page.get_by_label("Upload photos").set_input_files(str(lfw_photo(faces_root, PERSON, 4)))
    wait_for_text(page, "#photos-summary", "1 usable.")
    shoot(page, "person-edit")
    consent.get_by_role("button", name="Record the consent").click()
    wait_for_text(page, "#flash", "The consent was recorded (notice notice-2026).")
    listed = consent.locator("ul.plain > li")
    expect(listed).to_have_count(2)
    assert "written release" in consent.inner_text() and "2031-01-" in consent.inner_text()

    # Withdrawing consent erases the person, after a confirmation that says so.
    page.get_by_role("button", name="Withdraw consent…").click()
    question = page.locator("#withdraw-question").inner_text()
    assert "This erases Colin L. Powell" in question and "permanently" in question
    confirm = page.get_by_role("button", name="Yes, withdraw and erase")
    assert confirm.evaluate("b => b === document.activeElement")
    page.get_by_role("button", name="Cancel").click()
    assert confirm.is_hidden()
    page.get_by_role("button", name="Withdraw consent…").click()
    confirm.click()
    page.wait_for_url(site.url("/ui/people?collection=default"))
    assert page.locator("#flash").inner_text().startswith("Colin L. Powell's consent was withdrawn")
    assert page.get_by_role("link", name="Colin L. Powell").count() == 0
    assert people_named(site, "Powell") == []


# --- enrollment refuses what it should ---------------------------------------------------------
def test_enrollment_needs_the_persons_consent(site: Site, pages: Pages, faces_root: Path) -> None:
    page = pages.new()
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/people/new"))
    fill_person_and_consent(page, "No Consent", agree=False)
    page.get_by_label("Upload photos").set_input_files(str(lfw_photo(faces_root, PERSON, 5)))
    wait_for_text(page, "#photos-summary", "1 usable.")
    page.get_by_role("button", name="Enroll", exact=True).click()
    wait_for_text(page, "#enroll-result", "The person's consent is required")
    agree = page.get_by_label("The person has read this notice")
    assert agree.evaluate("box => box.validity.valueMissing")
    assert page.url == site.url("/ui/people/new")
    assert people_named(site, "No Consent") == []


def test_an_ephemeral_collection_needs_no_consent_record(
    site: Site, pages: Pages, faces_root: Path
) -> None:
    with api_as(site) as api:
        body = {"name": "visitors", "ephemeral": True, "ttl_seconds": 3600}
        made = api.post("/v1/collections", json=body)
        assert made.status_code == 201, made.text
    page = pages.new()
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/people/new?collection=visitors"))
    assert page.get_by_label("Notice version shown").is_disabled()
    assert page.get_by_text("This collection is ephemeral").is_visible()
    page.get_by_label("Name", exact=True).fill("Day Visitor")
    page.get_by_label("Upload photos").set_input_files(str(lfw_photo(faces_root, PERSON, 6)))
    wait_for_text(page, "#photos-summary", "1 usable.")
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.wait_for_url(site.url("/ui/people/visitors/**"))
    assert "keeps no consent record" in page.locator("section:has(#consent)").inner_text()
    # Back to a durable collection: the consent step is required again.
    page.goto(site.url("/ui/people/new?collection=visitors"))
    page.get_by_label("Collection", exact=True).select_option("default")
    assert page.get_by_label("Notice version shown").is_enabled()


def test_a_photo_without_a_face_is_left_out(site: Site, pages: Pages, faceless_jpg: Path) -> None:
    page = pages.new()
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/people/new"))
    page.get_by_label("Upload photos").set_input_files(str(faceless_jpg))
    wait_for_text(page, "#photos-summary", "0 usable, 1 left out.")
    row = page.locator("#photos li").first
    assert row.get_attribute("class") == "unusable"
    assert row.locator(".result").inner_text() == "Left out: No face found."
    fill_person_and_consent(page, "Roof", agree=True)
    page.get_by_role("button", name="Enroll", exact=True).click()
    wait_for_text(page, "#enroll-result", "Add at least one usable photo.")
    shoot(page, "enroll-faceless")
    assert people_named(site, "Roof") == []


def test_the_webcam_preview_is_checked_for_a_face(site: Site, pages: Pages) -> None:
    page = pages.new()
    sign_in(page, site, make_key(site, ["enroll", "read"]))  # no recognize: detect still works
    page.goto(site.url("/ui/people/new"))
    page.get_by_role("button", name="Use the webcam").click()
    # Chromium's fake camera plays a test pattern: a live picture with no face in it.
    wait_for_text(page, "#camera-feedback", "No face found.")
    assert page.evaluate("document.getElementById('camera-video').videoWidth") > 0
    assert page.get_by_role("button", name="Take photo").is_disabled()
    shoot(page, "enroll-webcam")
    page.get_by_role("button", name="Stop the webcam").click()
    assert page.get_by_role("button", name="Use the webcam").is_visible()
    live = page.evaluate("document.getElementById('camera-video').srcObject")
    assert live is None


def face_video(photo: Path, path: Path) -> Path:
    """A Y4M clip of one still photo: chromium's fake camera plays it in a loop."""
    import cv2

    image = cv2.imread(str(photo))
    assert image is not None and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0
    height, width = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U, then V
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(10):
            clip.write(b"FRAME\n" + planes)
    return path


def test_a_webcam_photo_with_a_face_can_be_taken_and_enrolled(
    site: Site, browser: Any, faces_root: Path, tmp_path: Path
) -> None:
    video = face_video(lfw_photo(faces_root, "Tony_Blair", 2), tmp_path / "face.y4m")
    camera_arg = f"--use-file-for-fake-video-capture={video}"
    with_face = browser.browser_type.launch(
        executable_path=str(chromium_path()), args=[*CHROMIUM_ARGS, camera_arg]
    )
    try:
        pages = Pages(with_face)
        page = pages.new()
        sign_in(page, site, site.admin)
        page.goto(site.url("/ui/people/new"))
        page.get_by_role("button", name="Use the webcam").click()
        wait_for_text(page, "#camera-feedback", "Face found, quality")
        page.get_by_role("button", name="Take photo").click()
        wait_for_text(page, "#photos-summary", "1 usable.")
        assert page.locator("#photos li.usable .name").inner_text() == "webcam-1.jpg"
        fill_person_and_consent(page, "Tony Blair", agree=True)
        page.get_by_role("button", name="Enroll", exact=True).click()
        page.wait_for_url(site.url("/ui/people/default/**"))
        templates = page.locator("section:has(#templates) tbody tr")
        assert templates.count() == 1 and "webcam-1.jpg" in templates.inner_text()
        assert pages.errors == []
    finally:
        with_face.close()


# --- what a key without the scope sees ----------------------------------------------------------
def test_a_read_only_key_cannot_enroll(site: Site, pages: Pages) -> None:
    page = pages.new()
    sign_in(page, site, make_key(site, ["read"]))
    page.goto(site.url("/ui/people"))
    assert page.get_by_role("heading", name="People", exact=True).is_visible()
    assert page.get_by_role("link", name="Enroll a person").count() == 0
    answer = page.goto(site.url("/ui/people/new"))
    assert answer is not None and answer.status == 403
    assert page.get_by_role("alert").inner_text() == (
        "This page needs an API key with the 'enroll' scope."
    )
    assert page.get_by_role("link", name="Identify").count() == 0
    with api_as(site) as api:
        body = {"name": "Read Only Subject", "consent": CONSENT_JSON}
        made = api.post("/v1/collections/default/subjects", json=body)
        assert made.status_code == 201, made.text
    page.goto(site.url(f"/ui/people/default/{made.json()['id']}"))
    assert page.get_by_role("heading", level=1).inner_text() == "Read Only Subject"
    main = page.locator("main")
    for control in ("form#edit", "#consent-form", "#withdraw-start", "#add-faces", "#erase-start"):
        assert main.locator(control).count() == 0, f"a read-only key sees {control}"
    for name in ("Save", "Record the consent", "Withdraw consent…", "Add the photos"):
        assert page.get_by_role("button", name=name).count() == 0
    assert page.get_by_label("Upload photos").count() == 0
    missing = page.goto(site.url("/ui/people/default/no-such-person"))
    assert missing is not None and missing.status == 404
    assert "no subject with id 'no-such-person'" in page.get_by_role("alert").inner_text()
    assert pages.errors == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)",
        "Failed to load resource: the server responded with a status of 404 (Not Found)",
    ]
    pages.errors.clear()  # the refused pages answer 403 and 404, which the browser logs


def test_detect_takes_an_enroll_or_a_recognize_key(
    site: Site, faces_root: Path, faceless_jpg: Path
) -> None:
    photo = {"image": ("p.jpg", lfw_photo(faces_root, PERSON, 1).read_bytes())}
    for scopes in (["enroll"], ["recognize"]):
        with api_as(site, make_key(site, scopes)) as api:
            found = api.post("/v1/detect", files=photo)
        assert found.status_code == 200, found.text
        assert len(found.json()["faces"]) == 1
    with api_as(site, make_key(site, ["read"])) as api:
        refused = problem(api.post("/v1/detect", files=photo), 403, "insufficient-scope")
    assert refused["accepted_scopes"] == ["enroll", "recognize"]


# --- what the person's page computes -------------------------------------------------------------
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def claim(quota: str, hours_ago: float) -> dict[str, Any]:
    return {"quota": quota, "at": (NOW - timedelta(hours=hours_ago)).isoformat()}


def quota(name: str, limit: int, window_s: float, collection: str = "default") -> QuotaDefinition:
    return QuotaDefinition(
        name=name, limit=limit, window_s=window_s, mode="enrolled", collection=collection
    )


@pytest.mark.parametrize(
    ("definitions", "claims", "expected"),
    [
        # Only the claims inside the window count; the last claim is the latest of all.
        (
            [quota("meals", 3, 86400)],
            [claim("meals", 30), claim("meals", 5), claim("meals", 1)],
            [QuotaUse("meals", 2, 3, 86400, NOW - timedelta(hours=1))],
        ),
        # An enrolled quota of this collection is listed even when never claimed; one of
        # another collection is not.
        (
            [quota("meals", 3, 86400), quota("gym", 1, 3600, collection="other")],
            [],
            [QuotaUse("meals", 0, 3, 86400, None)],
        ),
        # Claims of a quota no longer defined are still shown, without a limit.
        (
            [],
            [claim("snack", 2)],
            [QuotaUse("snack", 1, None, None, NOW - timedelta(hours=2))],
        ),
    ],
)
def test_quota_use_counts_the_current_window(
    definitions: list[QuotaDefinition],
    claims: list[dict[str, Any]],
    expected: list[QuotaUse],
) -> None:
    assert quota_use(definitions, claims, "default", NOW) == expected


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(540, "9 min"), (3600, "1 h"), (86400, "1 day"), (7 * 86400, "7 days"), (90, "90 s")],
)
def test_a_window_reads_as_people_say_it(seconds: float, said: str) -> None:
    assert span(seconds) == said


def test_the_form_offers_every_legal_basis_the_api_takes() -> None:
    assert set(LEGAL_BASES) == set(get_args(LegalBasis))
