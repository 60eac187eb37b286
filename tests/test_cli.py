"""The command line as a user runs it: JSON output, exit codes, errors."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import CONSENT_ARGS


def facegate(
    *args: str | Path, data_dir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {})}
    if data_dir is not None:
        env["FACEGATE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "facegate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    data_dir = tmp_path_factory.mktemp("cli") / "gallery"
    enroll = data_root / "video" / "enroll"
    for name, photo in [
        ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
        ("Alex Lacamoire", "alex-lacamoire.png"),
        ("Barack Obama", "obama.jpg"),
    ]:
        done = facegate("enroll", name, enroll / photo, *CONSENT_ARGS, "--json", data_dir=data_dir)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["created"] is True
    return data_dir


def test_subjects_list_json(gallery: Path) -> None:
    listed = json.loads(facegate("subjects", "list", "--json", data_dir=gallery).stdout)
    assert listed["total"] == 3
    assert sorted(s["name"] for s in listed["subjects"]) == [
        "Alex Lacamoire",
        "Barack Obama",
        "Lin-Manuel Miranda",
    ]
    assert all("embedding" not in json.dumps(s) for s in listed["subjects"])


def test_identify_frame_of_the_sample_clip(gallery: Path, data_root: Path) -> None:
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    done = facegate("identify", clip, "--frame", "150", "--json", data_dir=gallery)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["operating_point"]["fmr"] == pytest.approx(1e-3)
    names = [f["subject"]["name"] for f in answer["faces"] if f["subject"]]
    assert "Lin-Manuel Miranda" in names
    for face in answer["faces"]:
        assert {"verdict", "similarity", "operating_point", "quality", "candidates"} <= set(face)


def test_verify_exit_codes(gallery: Path, faces_root: Path) -> None:
    obama = faces_root.parent / "video" / "enroll" / "obama.jpg"
    assert facegate("verify", "Barack Obama", obama, data_dir=gallery).returncode == 0
    stranger = faces_root / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"
    done = facegate("verify", "Barack Obama", stranger, "--json", data_dir=gallery)
    assert done.returncode == 1 and json.loads(done.stdout)["verdict"] == "no_match"


def test_compare_json(faces_root: Path) -> None:
    a = faces_root / "Hugo_Chavez" / "Hugo_Chavez_0001.jpg"
    b = faces_root / "Hugo_Chavez" / "Hugo_Chavez_0002.jpg"
    done = facegate("compare", a, b, "--json", "--fmr", "1e-2")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["verdict"] == "match" and answer["operating_point"]["fmr"] == pytest.approx(1e-2)


@pytest.mark.parametrize(
    ("content", "code", "exit_code"),
    [(b"", "empty_image", 3), (b"hello, not a photo", "not_an_image", 3)],
    ids=["empty", "text"],
)
def test_bad_image_gives_a_clear_error(
    gallery: Path, tmp_path: Path, content: bytes, code: str, exit_code: int
) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(content)
    done = facegate("enroll", "Someone", bad, *CONSENT_ARGS, "--json", data_dir=gallery)
    assert done.returncode == exit_code
    assert json.loads(done.stdout)["error"] == code
    assert "Traceback" not in done.stderr


def test_missing_file_is_a_usage_error(gallery: Path, tmp_path: Path) -> None:
    done = facegate("identify", tmp_path / "no-such-photo.jpg", data_dir=gallery)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_file_over_the_byte_limit_is_refused_unread(gallery: Path, data_root: Path) -> None:
    env_limit = {"FACEGATE_VISION__MAX_BYTES": "1000"}
    photo = data_root / "video" / "enroll" / "obama.jpg"  # 280 KB
    done = facegate("identify", photo, "--json", data_dir=gallery, env=env_limit)
    assert done.returncode == 3 and json.loads(done.stdout)["error"] == "image_too_large"


def test_unsupported_fmr_is_refused(gallery: Path, data_root: Path) -> None:
    done = facegate(
        "identify", data_root / "video" / "enroll" / "obama.jpg", "--fmr", "0.5", data_dir=gallery
    )
    assert done.returncode == 6 and "not calibrated" in done.stderr


def test_detect_writes_an_annotated_image(tmp_path: Path, two_face_png: Path) -> None:
    out = tmp_path / "annotated.png"
    done = facegate("detect", two_face_png, "--out", out, "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["faces"]) == 2 and out.stat().st_size > 0


def test_show_and_erase_subject(gallery: Path) -> None:
    shown = json.loads(
        facegate("subjects", "show", "Alex Lacamoire", "--json", data_dir=gallery).stdout
    )
    assert len(shown["templates"]) == 1 and shown["templates"][0]["model_id"] == "sface"
    unconfirmed = facegate("subjects", "erase", shown["id"], data_dir=gallery)
    assert unconfirmed.returncode == 1  # asked for confirmation, got none (no terminal)
    erased = facegate("subjects", "erase", shown["id"], "--yes", "--json", data_dir=gallery)
    assert json.loads(erased.stdout)["templates"] == 1
    assert json.loads(erased.stdout)["consents"] == 1
    missing = facegate("subjects", "show", shown["id"], "--json", data_dir=gallery)
    assert missing.returncode == 5 and json.loads(missing.stdout)["error"] == "unknown_subject"


def test_collections_keep_galleries_apart(tmp_path: Path, data_root: Path) -> None:
    data_dir = tmp_path / "g"
    obama = data_root / "video" / "enroll" / "obama.jpg"
    made = facegate(
        "collections",
        "create",
        "lobby",
        "--model",
        "sface",
        "--fmr",
        "1e-4",
        "--json",
        data_dir=data_dir,
    )
    assert made.returncode == 0, made.stderr
    assert (
        facegate(
            "enroll", "Barack Obama", obama, "-c", "lobby", *CONSENT_ARGS, data_dir=data_dir
        ).returncode
        == 0
    )
    listed = json.loads(facegate("collections", "list", "--json", data_dir=data_dir).stdout)
    assert [(c["name"], c["model_id"], c["fmr"], c["subjects"]) for c in listed["collections"]] == [
        ("lobby", "sface", 1e-4, 1)
    ]
    found = json.loads(
        facegate("identify", obama, "-c", "lobby", "--json", data_dir=data_dir).stdout
    )
    assert found["operating_point"]["fmr"] == pytest.approx(1e-4)  # the collection's default
    assert found["faces"][0]["subject"]["name"] == "Barack Obama"
    elsewhere = facegate("identify", obama, "-c", "garage", "--json", data_dir=data_dir)
    assert (
        elsewhere.returncode == 5 and json.loads(elsewhere.stdout)["error"] == "unknown_collection"
    )
    pinned = facegate(
        "enroll",
        "Someone",
        obama,
        "-c",
        "lobby",
        "--model",
        "dlib",
        *CONSENT_ARGS,
        "--json",
        data_dir=data_dir,
    )
    assert pinned.returncode == 6 and json.loads(pinned.stdout)["error"] == "model_mismatch"
    assert (
        facegate("collections", "remove", "lobby", data_dir=data_dir).returncode == 2
    )  # needs --yes
    gone = json.loads(
        facegate("collections", "remove", "lobby", "--yes", "--json", data_dir=data_dir).stdout
    )
    assert gone == {"collection": "lobby", "removed_subjects": 1}


@pytest.mark.parametrize(
    "env",
    [
        {"FACEGATE_FMR": "abc"},
        {"FACEGATE_VISION__MAX_PIXELS": "0"},
        {"FACEGATE_VISION__BOGUS": "1"},
        {"FACEGATE_GALLERY__TOP_K": "0"},
        {"FACEGATE_MODEL": "yunet"},
        {"FACEGATE_FRM": "1e-4"},
        {"FACEGATE_CONFIG": "/nonexistent/facegate.toml"},
    ],
    ids=[
        "fmr-not-a-number",
        "zero-pixels",
        "unknown-nested-key",
        "top-k-zero",
        "detector-as-model",
        "typo-in-a-name",
        "missing-config-file",
    ],
)
def test_bad_settings_are_config_errors(
    tmp_path: Path, data_root: Path, env: dict[str, str]
) -> None:
    photo = data_root / "video" / "enroll" / "obama.jpg"
    done = facegate("enroll", "X", photo, *CONSENT_ARGS, "--json", data_dir=tmp_path / "g", env=env)
    assert done.returncode == 6, done.stderr
    assert json.loads(done.stdout)["error"] in {"config_error", "model_not_found"}
    assert "Traceback" not in done.stderr


def test_enroll_dir_survives_odd_folders(tmp_path: Path, faces_root: Path) -> None:
    tree = tmp_path / "people"
    good = tree / "Hugo_Chavez"
    good.mkdir(parents=True)
    (good / "a.jpg").symlink_to(faces_root / "Hugo_Chavez" / "Hugo_Chavez_0001.jpg")
    (tree / "___").mkdir()  # a name that is empty once underscores become spaces
    (tree / "___" / "a.jpg").symlink_to(faces_root / "Hugo_Chavez" / "Hugo_Chavez_0002.jpg")
    (tree / "Loop").mkdir()
    (tree / "Loop" / "x.jpg").symlink_to(tree / "Loop" / "x.jpg")  # a symlink to itself
    (tree / "Dir_Named_Jpg" / "x.jpg").mkdir(parents=True)
    done = facegate(
        "enroll-dir", tree, "--face", "largest", *CONSENT_ARGS, "--json", data_dir=tmp_path / "g"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["enrolled"] == 1
    assert {f["person"]: f["code"] for f in summary["failed"]} == {
        "___": "invalid_subject",
        "Loop": "no_images",
        "Dir_Named_Jpg": "no_images",
    }


def test_frame_option_refuses_images_and_huge_videos(tmp_path: Path, data_root: Path) -> None:
    photo = data_root / "video" / "enroll" / "obama.jpg"
    assert facegate("detect", photo, "--frame", "0").returncode == 2
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    small = {"FACEGATE_VISION__MAX_PIXELS": "1000"}
    done = facegate("detect", clip, "--frame", "0", "--json", env=small)
    assert done.returncode == 3 and json.loads(done.stdout)["error"] == "image_too_large"
    assert facegate("detect", photo, "--out", tmp_path / "x.xyz").returncode == 2


def test_a_corrupt_database_is_a_clear_storage_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "g"
    data_dir.mkdir()
    (data_dir / "gallery.sqlite3").write_bytes(b"this is not SQLite " * 300)
    done = facegate("subjects", "list", "--json", data_dir=data_dir)
    assert done.returncode == 7 and json.loads(done.stdout)["error"] == "storage_error"
    assert "Traceback" not in done.stderr


def test_audit_list_export_and_verify(tmp_path: Path) -> None:
    import sqlite3

    data_dir = tmp_path / "g"
    for name in ("door-1", "door-2"):
        made = facegate("keys", "create", name, "--scope", "recognize", "--json", data_dir=data_dir)
        assert made.returncode == 0, made.stderr
    listed = json.loads(facegate("audit", "list", "--json", data_dir=data_dir).stdout)["entries"]
    assert len(listed) >= 2 and all(e["hash"] for e in listed)
    exported = facegate("audit", "export", data_dir=data_dir).stdout.splitlines()
    chain = [json.loads(line) for line in exported]
    assert [e["seq"] for e in chain] == sorted(e["seq"] for e in chain)
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))
    assert facegate("audit", "verify", data_dir=data_dir).returncode == 0
    with sqlite3.connect(data_dir / "gallery.sqlite3") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")  # as someone with the file could
        conn.execute("UPDATE audit_log SET outcome = 'forged' WHERE seq = ?", (chain[0]["seq"],))
    broken = facegate("audit", "verify", "--json", data_dir=data_dir)
    assert broken.returncode == 1
    assert json.loads(broken.stdout) == {"intact": False, "first_broken_seq": chain[0]["seq"]}


def test_consent_export_and_withdrawal_from_the_command_line(
    tmp_path: Path, data_root: Path
) -> None:
    data_dir = tmp_path / "g"
    photo = data_root / "video" / "enroll" / "obama.jpg"
    refused = facegate("enroll", "Barack Obama", photo, "--json", data_dir=data_dir)
    assert refused.returncode == 5 and json.loads(refused.stdout)["error"] == "consent_required"
    half = facegate(
        "enroll",
        "Barack Obama",
        photo,
        "--consent",
        "explicit_consent",
        "--json",
        data_dir=data_dir,
    )
    assert half.returncode == 5 and json.loads(half.stdout)["error"] == "invalid_consent"
    done = facegate(
        "enroll",
        "Barack Obama",
        photo,
        *CONSENT_ARGS,
        "--consent-expires",
        "2099-01-01",
        "--json",
        data_dir=data_dir,
    )
    assert done.returncode == 0, done.stdout
    subject_id = json.loads(done.stdout)["subject"]["id"]

    renewed = facegate(
        "subjects",
        "consent",
        "Barack Obama",
        "--consent",
        "written_release",
        "--notice-version",
        "v2",
        "--json",
        data_dir=data_dir,
    )
    records = json.loads(renewed.stdout)["consents"]
    assert [(c["legal_basis"], c["notice_version"]) for c in records] == [
        ("explicit_consent", "test-notice-1"),
        ("written_release", "v2"),
    ]
    assert records[0]["expires_at"].startswith("2099-01-01")
    assert all(c["collected_by"].startswith("cli:") for c in records)

    out = tmp_path / "export.json"
    exported = facegate("subjects", "export", "Barack Obama", "--out", out, data_dir=data_dir)
    assert exported.returncode == 0, exported.stderr
    document = json.loads(out.read_text())
    assert document["subject"]["id"] == subject_id
    assert len(document["consents"]) == 2 and len(document["templates"]) == 1
    assert "embedding" not in json.dumps(document["templates"])
    assert {"consent.record"} <= {e["action"] for e in document["audit"]}

    withdrawn = facegate(
        "subjects", "withdraw-consent", subject_id, "--yes", "--json", data_dir=data_dir
    )
    assert json.loads(withdrawn.stdout)["templates"] == 1
    gone = facegate("subjects", "export", subject_id, "--json", data_dir=data_dir)
    assert gone.returncode == 5 and json.loads(gone.stdout)["error"] == "unknown_subject"
    verified = facegate("audit", "verify", "--json", data_dir=data_dir)
    assert json.loads(verified.stdout) == {"intact": True, "first_broken_seq": None}
    actions = [
        json.loads(line)["action"]
        for line in facegate("audit", "export", data_dir=data_dir).stdout.splitlines()
    ]
    assert {"subject.export", "consent.withdraw", "consent.record"} <= set(actions)


def test_the_command_line_refuses_ephemeral_collections(tmp_path: Path, data_root: Path) -> None:
    data_dir = tmp_path / "g"
    made = facegate(
        "collections", "create", "kiosk", "--ephemeral", "--ttl", "60", "--json", data_dir=data_dir
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["ephemeral"] is True
    photo = data_root / "video" / "enroll" / "obama.jpg"
    done = facegate("enroll", "X", photo, "-c", "kiosk", *CONSENT_ARGS, "--json", data_dir=data_dir)
    assert done.returncode == 5 and json.loads(done.stdout)["error"] == "ephemeral_collection"
    bad = facegate("collections", "create", "k2", "--ttl", "60", data_dir=data_dir)
    assert bad.returncode == 2 and "ephemeral" in bad.stderr
