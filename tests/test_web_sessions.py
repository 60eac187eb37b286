"""Signing in to the web UI, over real HTTP (no browser needed for these rules): the
session cookie, CSRF protection of the API when it is used with the cookie, sign-out,
revoked keys, redirects that stay on this site, and the security headers of every page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from facegate.config import ServiceSettings, Settings
from facegate.service.sessions import SESSION_COOKIE
from facegate.service.state import BOOTSTRAP_KEY_FILE
from facegate.web.site import create_site
from facegate.web.ui import CONTENT_SECURITY_POLICY
from helpers import problem, running_server

TOKEN = re.compile(r'name="login_token" value="([^"]+)"')
CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class Site:
    base: str
    admin: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, follow_redirects=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data_dir = tmp_path_factory.mktemp("web-sessions")
    config = Settings(data_dir=data_dir, service=ServiceSettings(rate_limit=0))
    with running_server(config, create_site(config)) as base:
        yield Site(base, (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip())


def sign_in(client: httpx.Client, secret: str, next_path: str = "/ui/") -> httpx.Response:
    form = client.get("/ui/login", params={"next": next_path})
    assert form.status_code == 200
    token = TOKEN.search(form.text)
    assert token is not None
    return client.post(
        "/ui/login", data={"api_key": secret, "login_token": token[1], "next": next_path}
    )


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/ui/")
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None and found[1]
    return found[1]


def make_key(site: Site, scopes: list[str]) -> tuple[str, str]:
    with site.client() as client:
        made = client.post(
            "/v1/keys",
            json={"name": "ui test", "scopes": scopes},
            headers={"Authorization": f"Bearer {site.admin}"},
        )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["secret"]


def test_pages_need_a_session_and_the_sign_in_form_opens_one(site: Site) -> None:
    with site.client() as client:
        away = client.get("/ui/")
        assert away.status_code == 303
        assert away.headers["location"] == "/ui/login?next=/ui/"
        assert client.get("/").headers["location"] == "/ui/"

        wrong = sign_in(client, "fg_0000_not-a-key")
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        assert SESSION_COOKIE not in client.cookies

        done = sign_in(client, site.admin, "/ui/?from=sign-in")
        assert done.status_code == 303 and done.headers["location"] == "/ui/?from=sign-in"
        cookie = done.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/ui/").status_code == 200
        # The API takes the session cookie too: reads need nothing more.
        assert client.get("/v1/collections").status_code == 200


def test_the_sign_in_form_needs_its_own_token(site: Site) -> None:
    with site.client() as client:
        forged = client.post("/ui/login", data={"api_key": site.admin, "login_token": "x"})
        assert forged.status_code == 400 and SESSION_COOKIE not in client.cookies
        client.get("/ui/login")
        missing = client.post("/ui/login", data={"api_key": site.admin})
        assert missing.status_code == 400 and SESSION_COOKIE not in client.cookies


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui/", "/v1/keys", "/ui//evil.example"]
)
def test_after_sign_in_the_browser_stays_on_this_site(site: Site, target: str) -> None:
    with site.client() as client:
        done = sign_in(client, site.admin, target)
        assert done.status_code == 303 and done.headers["location"] == "/ui/"


def test_changes_with_the_cookie_need_the_csrf_token(site: Site) -> None:
    with site.client() as client:
        sign_in(client, site.admin)
        body = {"name": "csrf-check"}
        refused = client.post("/v1/collections", json=body)
        problem(refused, 403, "csrf-failed")
        problem(
            client.post("/v1/collections", json=body, headers={"X-CSRF-Token": "guess"}),
            403,
            "csrf-failed",
        )
        assert client.get("/v1/collections/csrf-check").status_code == 404  # nothing made
        made = client.post("/v1/collections", json=body, headers={"X-CSRF-Token": csrf_of(client)})
        assert made.status_code == 201, made.text


def test_sign_out_ends_the_session_and_needs_the_token(site: Site) -> None:
    with site.client() as client:
        sign_in(client, site.admin)
        token = csrf_of(client)
        cookie = client.cookies[SESSION_COOKIE]
        forged = client.post("/ui/logout", data={"csrf": "wrong"})
        assert forged.status_code == 303 and client.get("/ui/").status_code == 200
        out = client.post("/ui/logout", data={"csrf": token})
        assert out.headers["location"] == "/ui/login"
    with site.client() as stale:  # the old cookie, replayed: the session is gone
        stale.cookies.set(SESSION_COOKIE, cookie)
        assert stale.get("/ui/").status_code == 303
        problem(stale.get("/v1/collections"), 401, "unauthorized")


def test_a_revoked_key_ends_its_sessions(site: Site) -> None:
    key_id, secret = make_key(site, ["read"])
    with site.client() as client:
        sign_in(client, secret)
        assert client.get("/ui/").status_code == 200
        with site.client() as admin:
            revoked = admin.delete(
                f"/v1/keys/{key_id}", headers={"Authorization": f"Bearer {site.admin}"}
            )
            assert revoked.status_code in (200, 204), revoked.text
        assert client.get("/ui/").status_code == 303
        problem(client.get("/v1/collections"), 401, "unauthorized")


def test_scopes_still_apply_to_a_signed_in_browser(site: Site) -> None:
    _, secret = make_key(site, ["read"])
    with site.client() as client:
        sign_in(client, secret)
        token = csrf_of(client)
        refused = client.post(
            "/v1/collections", json={"name": "nope"}, headers={"X-CSRF-Token": token}
        )
        problem(refused, 403, "insufficient-scope")


def test_every_page_and_static_file_carries_the_security_headers(site: Site) -> None:
    with site.client() as client:
        sign_in(client, site.admin)
        for path in ("/ui/login", "/ui/", "/ui/static/app.js", "/ui/static/app.css"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        # Nothing on the pages comes from elsewhere.
        page = client.get("/ui/").text
        assert not re.search(r'(src|href)="(https?:)?//', page)


def test_templates_have_no_inline_script_or_style() -> None:
    templates = Path(__file__).resolve().parents[1] / "src" / "facegate" / "web" / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "style=" not in text, template.name


def test_the_api_docs_are_served_from_here_not_a_cdn(site: Site) -> None:
    with site.client() as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        assets = re.findall(r"""(?:src|href)=["']?([^"'\s>]+)""", docs.text)
        assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets)
        assert "cdn" not in docs.text
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert client.get("/redoc").status_code == 404  # it would need a CDN
