"""``facegate policy apply|show`` as a user runs them: one file with access rules and
quotas, checked whole before anything is written, versions, audit, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import CONSENT_ARGS
from test_cli import facegate

GOOD = """
[[doors]]
name = "front"
collection = "default"

[[groups]]
name = "residents"
members = ["res-1"]

[[schedules]]
name = "daytime"
timezone = "Europe/Berlin"
windows = [{ days = ["mon-sun"], start = "07:00", end = "22:00" }]

[[rules]]
effect = "allow"
doors = ["front"]
who = ["residents"]
schedule = "daytime"

[[quotas]]
name = "water"
limit = 1
window_s = 540
mode = "anonymous"
"""

BAD = """
[[doors]]
name = "front"
collection = "nowhere"

[[rules]]
effect = "maybe"
doors = ["back"]
who = ["residents"]

[[quotas]]
name = "water"
limit = 0
window_s = 540
mode = "anonymous"
"""


@pytest.fixture
def data_dir(tmp_path: Path, data_root: Path) -> Path:
    data = tmp_path / "data"
    photo = data_root / "video" / "enroll" / "obama.jpg"
    done = facegate(
        "enroll", "Barack Obama", photo, "--external-id", "res-1", *CONSENT_ARGS, data_dir=data
    )
    assert done.returncode == 0, done.stderr
    return data


def test_apply_then_show(data_dir: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(GOOD)
    checked = facegate("policy", "apply", policy, "--dry-run", "--json", data_dir=data_dir)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["written"] == {}
    shown = json.loads(facegate("policy", "show", "--json", data_dir=data_dir).stdout)
    assert shown == {"access": None, "quotas": None}  # the dry run wrote nothing

    applied = facegate("policy", "apply", policy, "--json", data_dir=data_dir)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["written"] == {"access": 1, "quotas": 1}
    again = json.loads(facegate("policy", "apply", policy, "--json", data_dir=data_dir).stdout)
    assert again["written"] == {"access": 2, "quotas": 2}
    shown = json.loads(facegate("policy", "show", "--json", data_dir=data_dir).stdout)
    assert shown["access"]["version"] == 2
    assert shown["access"]["document"]["doors"][0]["name"] == "front"
    assert shown["quotas"]["document"]["quotas"][0]["name"] == "water"
    audit = json.loads(facegate("audit", "list", "--json", data_dir=data_dir).stdout)
    actions = [r["action"] for r in audit["entries"]]
    assert actions.count("policy.access") == 2 and actions.count("policy.quotas") == 2


def test_a_bad_file_names_every_problem_and_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert facegate("policy", "apply", good, data_dir=data_dir).returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    done = facegate("policy", "apply", bad, "--json", data_dir=data_dir)
    assert done.returncode == 6, done.stderr
    answer = json.loads(done.stdout)
    assert answer["error"] == "invalid_policy"
    for fragment in ("nowhere", "effect", "back", "residents"):
        assert fragment in answer["message"], fragment
    shown = json.loads(facegate("policy", "show", "--json", data_dir=data_dir).stdout)
    assert shown["access"]["version"] == 1 and shown["quotas"]["version"] == 1

    limit_only = tmp_path / "quota.toml"
    limit_only.write_text(
        GOOD.split("[[quotas]]")[0] + "[[quotas]]\nname = 'x'\nlimit = 0\n"
        "window_s = 5\nmode = 'anonymous'\n"
    )
    done = facegate("policy", "apply", limit_only, "--json", data_dir=data_dir)
    assert done.returncode == 6 and "limit" in json.loads(done.stdout)["message"]
    assert (
        json.loads(facegate("policy", "show", "--json", data_dir=data_dir).stdout)["access"][
            "version"
        ]
        == 1
    )  # the valid access part was not written either

    for content, suffix in (("not toml [[[", ".toml"), ("[1, 2]", ".json"), ("x", ".yaml")):
        odd = tmp_path / f"odd{suffix}"
        odd.write_text(content)
        done = facegate("policy", "apply", odd, "--json", data_dir=data_dir)
        assert done.returncode == 6 and "Traceback" not in done.stderr, (content, done.stderr)
    unplugged = tmp_path / "camera.toml"
    unplugged.write_text(GOOD + "camera = 'kiosk-cam'\n")  # no such camera in the settings
    done = facegate("policy", "apply", unplugged, "--json", data_dir=data_dir)
    assert done.returncode == 6
    assert "quotas[0].camera: no camera named 'kiosk-cam'" in json.loads(done.stdout)["message"]
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[[lifts]]\nname = 'a'\n")
    done = facegate("policy", "apply", unknown, "--json", data_dir=data_dir)
    assert done.returncode == 6 and "lifts" in json.loads(done.stdout)["message"]
    missing = facegate("policy", "apply", tmp_path / "missing.toml", "--json", data_dir=data_dir)
    assert missing.returncode == 6
