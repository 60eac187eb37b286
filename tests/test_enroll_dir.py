"""enroll-dir: a kill -9 in the middle loses no enrolled subject, and the next run resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import CONSENT_ARGS


def people_tree(faces_root: Path, target: Path, count: int) -> list[str]:
    """``count`` person folders of symlinks to real photos (the data is never copied)."""
    names = sorted(p.name for p in faces_root.iterdir() if p.is_dir())[:count]
    for name in names:
        folder = target / name
        folder.mkdir(parents=True)
        for photo in sorted((faces_root / name).glob("*.jpg"))[:2]:
            (folder / photo.name).symlink_to(photo)
    return names


def subjects_in(db: Path) -> dict[str, str]:
    """external id -> subject id, read straight from the database file."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute("SELECT external_id, id FROM subjects").fetchall()
    except sqlite3.OperationalError:  # the table is not created yet
        return {}
    return dict(rows)


def template_owners(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {r[0] for r in conn.execute("SELECT DISTINCT subject_id FROM templates")}


def enroll_dir_command(tree: Path, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "facegate",
        "enroll-dir",
        str(tree),
        "--data-dir",
        str(data_dir),
        *CONSENT_ARGS,
        "--json",
    ]


def test_kill_9_mid_run_loses_nothing_and_resumes(faces_root: Path, tmp_path: Path) -> None:
    tree, data_dir = tmp_path / "people", tmp_path / "gallery"
    names = people_tree(faces_root, tree, 40)
    db = data_dir / "gallery.sqlite3"

    process = subprocess.Popen(
        enroll_dir_command(tree, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(subjects_in(db)) < 5:
        assert process.poll() is None, "enroll-dir ended before it could be killed"
        assert time.monotonic() < deadline, "enroll-dir made no progress in 120 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    before = subjects_in(db)
    assert 5 <= len(before) < len(names), "the kill should land in the middle of the run"
    # Each subject is written with its templates in one transaction: none is half-enrolled.
    assert set(before.values()) <= template_owners(db)

    finished = subprocess.run(
        enroll_dir_command(tree, data_dir), capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    summary = json.loads(finished.stdout)
    after = subjects_in(db)

    assert summary["skipped_already_enrolled"] == len(before)
    for external_id, subject_id in before.items():
        assert after[external_id] == subject_id, (
            "a subject enrolled before the crash was lost or redone"
        )
    failed = {f["person"] for f in summary["failed"]}
    assert set(after) | failed == set(names)
    assert summary["enrolled"] + len(before) == len(after)
    assert set(after.values()) <= template_owners(db)


@pytest.mark.parametrize("json_flag", [True, False])
def test_enroll_dir_reports_refusals(
    faces_root: Path, tmp_path: Path, faceless_jpg: Path, json_flag: bool
) -> None:
    tree = tmp_path / "people"
    people_tree(faces_root, tree, 2)
    (tree / "Nobody_Visible").mkdir()
    (tree / "Nobody_Visible" / "roof.jpg").symlink_to(faceless_jpg)
    (tree / "Empty_Folder").mkdir()
    command = enroll_dir_command(tree, tmp_path / "g")
    if not json_flag:
        command.remove("--json")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    if json_flag:
        summary = json.loads(result.stdout)
        assert summary["enrolled"] == 2
        assert {f["person"]: f["code"] for f in summary["failed"]} == {
            "Nobody_Visible": "no_face",
            "Empty_Folder": "no_images",
        }
    else:
        assert "2 enrolled" in result.stdout and "Nobody_Visible" in result.stdout
