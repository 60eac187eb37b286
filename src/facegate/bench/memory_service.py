"""Resident memory of the running service, for the memory benchmark: starts
``python -m facegate serve`` on loopback with an embedded, encrypted gallery (one subject
enrolled, an API key made for the run), reads its RSS from ``/proc`` when idle, after one
identify (the models have run) and after enrolling subjects over HTTP, and measures the
baselines of the same run in child interpreters that report their own memory: a bare
Python, and one that imported the peer library ``face_recognition`` and encoded a photo.
Used by :mod:`facegate.bench.memory`; nothing here prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from facegate.bench.memory_process import process_memory
from facegate.bench.memory_storage import CONSENT, TEMPLATE_QUALITY
from facegate.bench.search import MODEL, RealFaces
from facegate.bench.serve_process import serving
from facegate.gallery.audit import AuditLog
from facegate.gallery.crypto import Keyring
from facegate.gallery.gallery import Gallery
from facegate.gallery.keys import KeyStore
from facegate.gallery.records import Subject, Template, new_id
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.service.keyadmin import create_key

Progress = Callable[[str], None]

COLLECTION = "default"
# The consent of memory_storage.CONSENT, as the API takes it.
CONSENT_JSON = {"legal_basis": "explicit_consent", "notice_version": "benchmark"}


# --- child interpreters that report their own memory (the baselines) --------------------------
_STATUS_SNIPPET = """
def _status():
    found = {}
    with open('/proc/self/status') as handle:
        for line in handle:
            name, _, value = line.partition(':')
            if name in ('VmRSS', 'VmHWM'):
                found[name] = int(value.split()[0]) * 1024
    return found
"""

_BARE_PYTHON = (
    _STATUS_SNIPPET
    + """
import json, sys
status = _status()
report = {"rss_bytes": status["VmRSS"], "peak_rss_bytes": status["VmHWM"]}
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
"""
)

# face_recognition prints (and quits) when its models are missing: its output is kept off
# stdout, and the report goes to the file named by the first argument.
_PEER = (
    _STATUS_SNIPPET
    + """
import contextlib, io, json, sys, warnings
with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import face_recognition
faces, used = 0, None
for path in sys.argv[2:]:
    image = face_recognition.load_image_file(path)
    encodings = face_recognition.face_encodings(image, face_recognition.face_locations(image))
    if encodings:
        faces, used = len(encodings), path
        break
status = _status()
report = {"rss_bytes": status["VmRSS"], "peak_rss_bytes": status["VmHWM"],
          "faces_encoded": faces, "photo": used}
with open(sys.argv[1], "w") as out:
    json.dump(report, out)
"""
)


def _python_child(code: str, args: Sequence[str], cwd: Path) -> dict[str, Any]:
    """Run ``python -c code REPORT args``; the child writes a JSON report of its memory
    to the file REPORT (its stdout is not ours to parse: libraries print there)."""
    with tempfile.TemporaryDirectory(prefix="facegate-memory-") as scratch:
        report_path = Path(scratch) / "report.json"
        done = subprocess.run(
            [sys.executable, "-c", code, str(report_path), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not report_path.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"exit status {done.returncode}: {' | '.join(tail)}")
        report: dict[str, Any] = json.loads(report_path.read_text())
    return report


# --- the service ------------------------------------------------------------------------------
def _server_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its FACEGATE_* settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FACEGATE_")}
    env["FACEGATE_DATA_DIR"] = str(data_dir)
    env["FACEGATE_SERVICE__RATE_LIMIT"] = "0"  # no rate limit on the enrollment burst
    env["FACEGATE_RETENTION__SWEEP_INTERVAL_S"] = "0"  # no sweep thread waking up
    return env


def _prepare_service_data(data_dir: Path, first: RealFaces) -> str:
    """An encrypted embedded gallery with one enrolled subject (so that an identify runs
    the models) and an API key for it; returns the key's secret."""
    keyring = Keyring.create(data_dir / "keys" / "data-keys.json")  # where serve looks
    store = SQLiteStore(data_dir / "gallery.sqlite3", keyring)
    try:
        gallery = Gallery.open(store, COLLECTION, create_with_model=MODEL)
        subject = Subject(new_id(), "first subject", collection_id=COLLECTION)
        template = Template(
            new_id(), subject.id, MODEL, first.vectors[0], TEMPLATE_QUALITY, source="bench"
        )
        gallery.add_subject(subject, [template], CONSENT.record(subject.id))
        _, secret = create_key(
            KeyStore(store.engine),
            AuditLog(store.engine),
            "memory benchmark",
            ["recognize", "enroll"],
            [COLLECTION],
            by=None,
            via="bench",
        )
    finally:
        store.close()
    return secret


def _settle() -> None:
    """A moment for the allocator and any background thread after a request."""
    time.sleep(0.5)


def _enroll_over_http(
    client: httpx.Client,
    photos: Sequence[Path],
    wanted: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Enroll one photo each of new subjects until ``wanted`` are enrolled (a refused
    photo's subject is erased and the next photo tried)."""
    enrolled, refused = 0, 0
    started = time.perf_counter()
    for photo in photos:
        if enrolled == wanted:
            break
        made = client.post(
            f"/v1/collections/{COLLECTION}/subjects",
            json={"name": photo.parent.name.replace("_", " "), "consent": CONSENT_JSON},
        )
        made.raise_for_status()
        subject_id = made.json()["id"]
        done = client.post(
            f"/v1/collections/{COLLECTION}/subjects/{subject_id}/faces",
            files={"images": (photo.name, photo.read_bytes(), "image/jpeg")},
            data={"face": "largest"},
        )
        if done.status_code == 201:
            enrolled += 1
            if progress and (enrolled % 100 == 0 or enrolled == wanted):
                progress(f"enrolled {enrolled}/{wanted} subjects through the API")
        elif done.status_code == 422:  # no usable face: not enrolled, try the next photo
            refused += 1
            client.delete(f"/v1/collections/{COLLECTION}/subjects/{subject_id}")
        else:
            done.raise_for_status()
    if enrolled < wanted:
        raise RuntimeError(f"only {enrolled} of {wanted} subjects could be enrolled")
    return {
        "subjects": enrolled,
        "photos_refused": refused,
        "seconds": round(time.perf_counter() - started, 2),
    }


def measure_service(
    work: Path,
    faces: Path,
    first: RealFaces,
    probe: Path,
    enroll_photos: Sequence[Path],
    subjects: int,
    progress: Progress | None,
) -> dict[str, Any]:
    data_dir = work / "serve-data"
    secret = _prepare_service_data(data_dir, first)
    points: dict[str, Any] = {}
    if progress:
        progress("starting facegate serve")
    env = _server_env(data_dir)
    started = time.perf_counter()
    # cwd: no facegate.toml of the caller's working directory
    with serving(data_dir, env, work / "serve.log", cwd=data_dir.parent) as (process, base):
        ready_s = time.perf_counter() - started
        _settle()
        points["idle"] = process_memory(process.pid)
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            answer = client.post(
                f"/v1/collections/{COLLECTION}/identify",
                files={"image": (probe.name, probe.read_bytes(), "image/jpeg")},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"identify answered {answer.status_code}: {answer.text[:300]}")
            faces_found = len(answer.json().get("faces") or [])
            _settle()
            points["models_loaded"] = process_memory(process.pid)
            enrollment = _enroll_over_http(client, enroll_photos, subjects, progress)
            _settle()
            points["after_enrolling"] = process_memory(process.pid)
    grown = points["after_enrolling"]["rss_bytes"] - points["models_loaded"]["rss_bytes"]
    return {
        "command": "python -m facegate serve --host 127.0.0.1 --port PORT --data-dir DIR",
        "storage": "embedded SQLite, templates encrypted (the defaults)",
        "env": {k: v for k, v in _server_env(data_dir).items() if k.startswith("FACEGATE_")}
        | {"FACEGATE_DATA_DIR": "<work_dir>/.../serve-data"},
        "ready_s": round(ready_s, 2),
        "probe": probe.relative_to(faces).as_posix(),
        "probe_faces_found": faces_found,
        "points": points,
        "enrollment": {**enrollment, "templates_before": 1},
        "rss_growth_per_enrolled_subject_bytes": round(grown / subjects, 1),
    }


def measure_baselines(work: Path, photos: Sequence[Path]) -> dict[str, Any]:
    """A bare interpreter, and a process with face_recognition loaded and one photo
    encoded (or why that peer could not run)."""
    result: dict[str, Any] = {"bare_python": _python_child(_BARE_PYTHON, [], work)}
    if importlib.util.find_spec("face_recognition") is None:
        result["face_recognition"] = {"skipped": "face_recognition is not installed"}
        return result
    try:
        peer = _python_child(_PEER, [str(p) for p in photos], work)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        result["face_recognition"] = {"skipped": f"face_recognition failed: {error}"}
        return result
    if peer["photo"] is not None:
        peer["photo"] = Path(peer["photo"]).name
    result["face_recognition"] = {
        **peer,
        "what": "import face_recognition; load_image_file, face_locations (HOG), "
        "face_encodings on one photo",
    }
    return result
