"""The Access & quotas page and the Settings page in a real browser (Debian's chromium),
against a real service: the tables show what the API stores, the editors check with the
API's dry run before saving, a collection's operating point and API keys are managed from
Settings, and a key without admin cannot reach Settings at all (page, navigation, API).
The browser must report no error besides the refusals the tests provoke (a CSP violation
would be one)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser import Site, serve_site, shoot, sign_in

POLICY: dict[str, Any] = {
    "doors": [
        {
            "name": "front-in",
            "collection": "staff",
            "zone": "building",
            "direction": "in",
            "anti_passback": True,
            "min_quality": 0.3,
        },
        {"name": "front-out", "collection": "staff", "zone": "building", "direction": "out"},
        {"name": "server-room", "collection": "staff", "liveness_required": True},
    ],
    "groups": [{"name": "residents", "members": ["emp-1815", "emp-1906"]}],
    "schedules": [
        {
            "name": "office-hours",
            "timezone": "Europe/Berlin",
            "windows": [{"days": ["mon-fri"], "start": "07:00", "end": "22:00"}],
            "exceptions": [{"date": "2026-12-25", "closed": True}],
        }
    ],
    "rules": [
        {
            "id": "residents",
            "effect": "allow",
            "doors": ["*"],
            "who": ["residents"],
            "schedule": "office-hours",
        },
        {"id": "exit", "effect": "allow", "doors": ["front-out"], "who": ["*"]},
        {"id": "no-1906", "effect": "deny", "doors": ["server-room"], "who": ["subject:emp-1906"]},
    ],
}
QUOTAS = {
    "quotas": [
        {"name": "snack", "limit": 1, "window_s": 540, "mode": "anonymous"},
        {"name": "meals", "limit": 3, "window_s": 86400, "mode": "enrolled", "collection": "staff"},
    ]
}
OPERATOR_SCOPES = ["read", "recognize", "enroll"]  # everything but admin
# The only browser errors a test may see: the refusals it provokes on purpose.
REFUSAL = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


class Api:
    """The REST API with one key, as a script or an integration would use it."""

    def __init__(self, site: Site, secret: str) -> None:
        self.client = httpx.Client(
            base_url=site.base, headers={"Authorization": f"Bearer {secret}"}, timeout=60
        )

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        got = self.client.request(method, path, **kw)
        assert got.is_success, got.text
        return got.json()

    def key(self, name: str, scopes: list[str]) -> dict[str, Any]:
        made: dict[str, Any] = self.ok("POST", "/v1/keys", json={"name": name, "scopes": scopes})
        return made


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve_site(tmp_path_factory.mktemp("web-admin")) as running:
        api = Api(running, running.admin)
        api.ok("POST", "/v1/collections", json={"name": "staff"})
        api.ok("PUT", "/v1/access/policy", json=POLICY)
        api.ok("PUT", "/v1/quotas", json=QUOTAS)
        yield running


@pytest.fixture(scope="module")
def admin(site: Site) -> Api:
    return Api(site, site.admin)


class Watched:
    """A page whose console errors and script exceptions are recorded."""

    def __init__(self, browser: Any, **context: Any) -> None:
        self.page = browser.new_context(**context).new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def unexpected_errors(self, *allowed_statuses: int) -> list[str]:
        """Errors other than refusals (HTTP statuses) the test provoked on purpose."""
        return [
            e
            for e in self.errors
            if not ((m := REFUSAL.match(e)) and int(m[1]) in allowed_statuses)
        ]


def editor(page: Any, title: str) -> Any:
    return page.locator("section", has=page.get_by_role("heading", name=title, exact=True)).locator(
        "form.editor"
    )


def table_text(page: Any, title: str) -> str:
    text: str = page.get_by_role("table", name=title).inner_text()
    return text


def policy_version(admin: Api) -> int:
    version: int = admin.ok("GET", "/v1/access/policy")["version"]
    return version


# --- Access & quotas ---------------------------------------------------------------------------
def test_the_policy_page_shows_the_stored_policy_and_quotas(site: Site, browser: Any) -> None:
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, site.admin)
    page.get_by_role("link", name="Access & quotas").click()
    page.wait_for_url(site.url("/ui/policy"))

    doors = table_text(page, "Doors")
    assert "front-in" in doors and "server-room" in doors and "required" in doors
    front_in = page.get_by_role("row", name=re.compile("^front-in"))
    assert re.sub(r"\s+", " ", front_in.inner_text()).strip() == (
        "front-in staff — building in yes no 0.3"
    )
    assert "emp-1815, emp-1906" in table_text(page, "Groups")
    schedules = table_text(page, "Schedules")
    assert "Europe/Berlin" in schedules and "mon-fri 07:00-22:00" in schedules
    assert "2026-12-25: closed" in schedules
    rules = table_text(page, "Rules")
    assert "every door" in rules and "anyone identified" in rules and "subject:emp-1906" in rules
    assert page.get_by_role("row", name=re.compile("^2 no-1906")).get_by_text("deny").is_visible()
    quotas = table_text(page, "Quotas")
    assert "snack" in quotas and "9 min" in quotas and "1 day" in quotas and "meals" in quotas
    # The editors start from the stored documents.
    shown = json.loads(editor(page, "Access policy").locator("textarea").input_value())
    assert shown == Api(site, site.admin).ok("GET", "/v1/access/policy")["policy"]
    shoot(page, "policy")
    assert watched.unexpected_errors() == []


def test_an_invalid_edit_lists_the_api_errors_and_saves_nothing(
    site: Site, browser: Any, admin: Api
) -> None:
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/policy"))
    form = editor(page, "Access policy")
    before = policy_version(admin)
    bad = {
        **POLICY,
        "doors": [
            {"name": "gate", "collection": "visitors"},
            {"name": "side", "collection": "staff", "direction": "sideways"},
        ],
    }
    form.locator("textarea").fill(json.dumps(bad))
    for button, heading in (
        ("Validate", "Not valid (4 problems); nothing was saved:"),
        ("Save", "Not saved (4 problems); the stored document is unchanged:"),
    ):
        form.locator(".result").evaluate("el => el.replaceChildren()")
        form.get_by_role("button", name=button).click()
        problems = form.locator(".result li")
        problems.first.wait_for()
        texts = problems.all_inner_texts()
        assert any("doors[0].collection: no collection named 'visitors'" in t for t in texts)
        assert any(t.startswith("doors[1].direction") for t in texts)
        assert form.locator(".result p").inner_text() == heading
        assert len(texts) == 4  # the rules now name doors the document lost, too
    shoot(page, "policy-invalid")

    form.locator("textarea").fill('{"doors": [')
    form.get_by_role("button", name="Validate").click()
    form.locator(".result", has_text="This is not JSON").wait_for()

    assert policy_version(admin) == before
    page.reload()
    assert "gate" not in table_text(page, "Doors")
    assert watched.unexpected_errors(422) == []


def test_a_valid_edit_checks_then_saves_and_the_tables_show_it(
    site: Site, browser: Any, admin: Api
) -> None:
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/policy"))
    before = policy_version(admin)
    form = editor(page, "Access policy")
    document = json.loads(form.locator("textarea").input_value())
    document["doors"].append({"name": "garage", "collection": "staff"})
    form.locator("textarea").fill(json.dumps(document, indent=2))

    form.get_by_role("button", name="Validate").click()
    result = form.locator(".result.ok")
    result.wait_for()
    assert result.inner_text() == (
        f"Valid: 4 doors, 1 group, 1 schedule, 3 rules. Nothing was saved; version {before} "
        "stays in force until you press Save."
    )
    assert policy_version(admin) == before

    form.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/ui/policy\?saved=policy"))
    assert (
        page.get_by_role("status")
        .first.inner_text()
        .startswith(f"Saved: the access policy is now version {before + 1}, set ")
    )
    assert policy_version(admin) == before + 1
    assert "garage" in table_text(page, "Doors")

    quotas = editor(page, "Quotas")
    definitions = json.loads(quotas.locator("textarea").input_value())
    definitions["quotas"].append(
        {"name": "water", "limit": 2, "window_s": 3600, "mode": "anonymous"}
    )
    quotas.locator("textarea").fill(json.dumps(definitions))
    quotas.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/ui/policy\?saved=quotas"))
    row = page.get_by_role("row", name=re.compile("^water"))
    assert "anonymous" in row.inner_text() and "1 h" in row.inner_text()
    assert [q["name"] for q in admin.ok("GET", "/v1/quotas")["quotas"]] == [
        "snack",
        "meals",
        "water",
    ]
    assert watched.unexpected_errors() == []


# --- Settings ----------------------------------------------------------------------------------
def test_the_operating_point_changes_and_sticks(site: Site, browser: Any, admin: Api) -> None:
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, site.admin)
    page.get_by_role("link", name="Settings").click()
    page.wait_for_url(site.url("/ui/settings"))
    staff = page.locator("form.collection[data-collection=staff]")
    select = staff.get_by_label("Operating point (false match rate)")
    assert select.input_value() == "0.001"
    options = select.locator("option").all_inner_texts()
    assert options == [
        "0.01 (1 in 100): threshold 0.293",
        "0.001 (1 in 1,000): threshold 0.360",
        "0.0001 (1 in 10,000): threshold 0.416",
    ]
    select.select_option("0.0001")
    staff.get_by_label("Erase people not matched for (days)").fill("")
    staff.get_by_role("button", name="Save staff").click()
    result = staff.locator(".result.ok")
    result.wait_for()
    assert result.inner_text().startswith("Saved: FMR 0.0001 (threshold 0.416)")
    assert "idle limit: none, template age limit: none." in result.inner_text()
    shoot(page, "settings")

    page.reload()
    staff = page.locator("form.collection[data-collection=staff]")
    assert staff.get_by_label("Operating point (false match rate)").input_value() == "0.0001"
    assert staff.get_by_label("Erase people not matched for (days)").input_value() == ""
    stored = admin.ok("GET", "/v1/collections/staff")
    assert stored["fmr"] == 1e-4 and stored["max_idle_days"] is None
    staff.get_by_role("button", name="Save staff").click()  # unchanged: no request
    staff.locator(".result", has_text="Nothing changed.").wait_for()
    retention = page.get_by_role("region", name="Service retention").inner_text()
    assert "every 1 h" in retention and "30 days" in retention and "facegate.toml" in retention
    assert watched.unexpected_errors() == []


def test_a_new_key_shows_its_secret_once_and_can_be_revoked(
    site: Site, browser: Any, admin: Api
) -> None:
    watched = Watched(browser, permissions=["clipboard-read", "clipboard-write"])
    page = watched.page
    sign_in(page, site, site.admin)
    page.goto(site.url("/ui/settings"))
    form = page.locator("#new-key")
    form.get_by_label("Name").fill("lobby kiosk")
    form.get_by_label("Collections (optional)").fill("staff")
    form.get_by_role("checkbox", name=re.compile("^read")).check()
    form.get_by_role("checkbox", name=re.compile("^recognize")).check()
    form.get_by_role("button", name="Create key").click()

    panel = page.locator("#new-secret")
    panel.wait_for()
    assert "shown only this once" in panel.inner_text()
    secret = page.locator("#new-secret-value").inner_text()
    assert secret.startswith("fg_")
    kiosk = Api(site, secret)
    assert [c["name"] for c in kiosk.ok("GET", "/v1/collections")["items"]] == ["staff"]
    page.get_by_role("button", name="Copy the secret").click()
    page.locator("#copy-result", has_text="Copied.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shoot(page, "settings-new-key")

    page.get_by_role("button", name="Done: I have stored it").click()
    row = page.get_by_role("row", name=re.compile("^lobby kiosk"))
    row.wait_for()
    assert secret not in page.content()  # shown once: gone after the reload
    assert "read, recognize" in row.inner_text() and "staff" in row.inner_text()

    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    row.get_by_role("button", name=re.compile("^Revoke")).click()
    page.get_by_role("row", name=re.compile("^lobby kiosk")).get_by_text("revoked").wait_for()
    assert asked and asked[0].startswith("Revoke key 'lobby kiosk'")
    assert kiosk.client.get("/v1/collections").status_code == 401
    assert watched.unexpected_errors() == []


def test_revoking_the_key_you_are_signed_in_with_warns_and_signs_you_out(
    site: Site, browser: Any, admin: Api
) -> None:
    second = admin.key("second admin", ["admin"])
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, second["secret"])
    page.goto(site.url("/ui/settings"))
    mine = page.get_by_role("row", name=re.compile("^second admin"))
    assert mine.get_by_text("you", exact=True).is_visible()

    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    mine.get_by_role("button", name=re.compile("^Revoke")).click()
    assert asked and "signs you out" in asked[0]
    keys = admin.ok("GET", "/v1/keys")["items"]
    assert next(k for k in keys if k["id"] == second["id"])["active"]  # dismissed: nothing

    page.once("dialog", lambda d: d.accept())
    mine.get_by_role("button", name=re.compile("^Revoke")).click()
    page.wait_for_url(re.compile(r"/ui/login"))
    assert Api(site, second["secret"]).client.get("/v1/collections").status_code == 401
    assert watched.unexpected_errors(401) == []


def test_a_key_without_admin_cannot_reach_settings(site: Site, browser: Any, admin: Api) -> None:
    operator = admin.key("operator", OPERATOR_SCOPES)
    watched = Watched(browser)
    page = watched.page
    sign_in(page, site, operator["secret"])
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Access & quotas").is_visible()
    assert nav.get_by_role("link", name="Settings").count() == 0

    answer = page.goto(site.url("/ui/settings"))
    assert answer is not None and answer.status == 403
    assert page.get_by_role("heading", name="Not allowed").is_visible()
    assert "admin" in page.get_by_role("alert").inner_text()
    assert page.locator("form.collection, #new-key").count() == 0
    shoot(page, "settings-forbidden")

    # The API refuses it too, with a bearer key and with this browser's session.
    refused = Api(site, operator["secret"]).client.patch(
        "/v1/collections/staff", json={"fmr": 1e-2}
    )
    assert refused.status_code == 403
    status = page.evaluate(
        "facegate.api('PATCH', '/v1/collections/staff', {fmr: 0.01}).then(() => 200, e => e.status)"
    )
    assert status == 403
    assert admin.ok("GET", "/v1/collections/staff")["fmr"] != 1e-2

    # Access & quotas: the tables, but no editor.
    page.goto(site.url("/ui/policy"))
    assert "front-in" in table_text(page, "Doors")
    assert page.locator("form.editor").count() == 0
    assert "needs an admin key" in page.locator("main").inner_text()
    assert watched.unexpected_errors(403) == []


def test_the_pages_fit_a_phone(site: Site, browser: Any) -> None:
    watched = Watched(browser)
    page = watched.page
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, site, site.admin)
    for name in ("policy", "settings"):
        page.goto(site.url(f"/ui/{name}"))
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/ui/{name} scrolls sideways on a phone ({width} px)"
        shoot(page, f"{name}-phone")
    assert watched.unexpected_errors() == []
