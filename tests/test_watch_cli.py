"""``facegate watch`` as a user runs it: events as JSON lines, a summary, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facegate.config import Settings
from facegate.gallery.opening import open_store
from stream_truth import enroll_clip_people
from test_cli import facegate


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The three people of ../shared/data/video/enroll, enrolled."""
    data_dir = tmp_path_factory.mktemp("watch") / "gallery"
    enroll_clip_people(Settings(data_dir=data_dir), data_root / "video")
    return data_dir


def test_watch_prints_one_decision_per_track(gallery: Path, data_root: Path) -> None:
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    done = facegate("watch", clip, "--json", "--name", "cli-clip", data_dir=gallery)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    named = {e["subject_name"] for e in events if e["kind"] == "identified"}
    assert {"Lin-Manuel Miranda", "Alex Lacamoire"} <= named
    assert named <= {"Lin-Manuel Miranda", "Alex Lacamoire", "Barack Obama"}
    assert any(e["kind"] == "unknown" for e in events)
    assert {e["camera"] for e in events} == {"cli-clip"}
    # Recorded in the database too (the default).
    store = open_store(Settings(data_dir=gallery))
    try:
        stored = store.list_events(camera="cli-clip", limit=1000)
    finally:
        store.close()
    assert {e.id for e in stored} == {e["id"] for e in events}


def test_watch_human_output_has_a_status_summary(gallery: Path, data_root: Path) -> None:
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    done = facegate("watch", clip, "--no-record", "--fps", "5", data_dir=gallery)
    assert done.returncode == 0, done.stderr
    assert "identified Lin-Manuel Miranda" in done.stdout
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("ended ·") and "analysed" in summary and "dropped" in summary


def test_watch_refuses_bad_sources_and_options(
    gallery: Path, data_root: Path, tmp_path: Path
) -> None:
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = [
        (("watch", tmp_path / "missing.mp4"), 3, "video_source"),
        (("watch", not_video), 3, "video_source"),
        (("watch", empty), 3, "video_source"),
        (("watch", clip, "--collection", "nowhere"), 5, None),
        (("watch", clip, "--fps", "0"), 6, "config_error"),
        (("watch", clip, "--transport", "carrier-pigeon"), 6, "config_error"),
        (("watch", clip, "--detection-size", "10"), 6, "config_error"),
    ]
    for args, code, error in cases:
        done = facegate(*args, "--json", data_dir=gallery)
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, args
        if error is not None:
            assert json.loads(done.stdout)["error"] == error, args


def test_watch_refuses_an_ephemeral_collection(tmp_path: Path, data_root: Path) -> None:
    data_dir = tmp_path / "data"
    made = facegate(
        "collections", "create", "kiosk", "--ephemeral", "--ttl", "60", data_dir=data_dir
    )
    assert made.returncode == 0, made.stderr
    clip = data_root / "video" / "short_hamilton_clip.mp4"
    done = facegate("watch", clip, "--collection", "kiosk", "--json", data_dir=data_dir)
    assert done.returncode == 5
    assert json.loads(done.stdout)["error"] == "ephemeral_collection"
