"""API load: concurrent clients identifying against an enrolled gallery through a real
``facegate serve`` on loopback, every answer checked against the request it answers.

1. Gallery: one photo per person of the first ``subjects`` LFW identities (sorted by
   folder name) whose first photo gives a usable face, enrolled with the library
   (``FaceRecognizer``, ``face="largest"``, ``strict=False``) into collection ``default``.
2. Probes: other photos (up to ``probes_per_person``) of the enrolled people. Each is first
   identified with the library at the collection's operating point; a probe the model
   itself gets wrong is excluded up front and counted, so that a wrong answer under load
   means a mix-up between requests, not a model error.
3. ``python -m facegate serve`` on loopback (rate limit off), a ``recognize`` key.
4. After a warm-up and 20 requests one at a time (the baseline: latency and throughput
   without load), ``clients`` concurrent clients (asyncio + httpx, one connection each)
   POST ``/v1/collections/default/identify`` for ``seconds``. Ratios: throughput under load
   over one-at-a-time throughput, and loaded over unloaded median latency.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from facegate.bench.serve_process import serving
from facegate.config import ServiceSettings
from facegate.errors import BenchmarkError

COLLECTION = "default"
MANIFEST = "load-manifest.json"


Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default progress: say nothing (the library never prints)."""


# --- the gallery ------------------------------------------------------------------------------
def photos_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


def build_gallery(
    data_dir: Path, faces: Path, subjects: int, log: Progress = _quiet
) -> dict[str, Any]:
    """Enroll one photo each of the first ``subjects`` identities with a usable face."""
    from facegate.config import Settings
    from facegate.errors import FacegateError
    from facegate.gallery.records import ConsentGrant
    from facegate.recognition import FaceRecognizer

    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / "gallery.sqlite3").exists():
        raise BenchmarkError(f"{data_dir} already holds a gallery: reuse it or use another folder")
    recognizer = FaceRecognizer.open(Settings(data_dir=data_dir), COLLECTION)
    people: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    started = time.monotonic()
    try:
        for folder in sorted(p for p in faces.iterdir() if p.is_dir()):
            if len(people) == subjects:
                break
            photos = photos_of(folder)
            if not photos:
                continue
            try:
                done = recognizer.enroll(
                    folder.name.replace("_", " "),
                    [photos[0]],
                    external_id=folder.name,
                    face="largest",
                    strict=False,
                    # LFW people stand in for consenting subjects of a real deployment.
                    consent=ConsentGrant("explicit_consent", "benchmark", "load_identify"),
                )
            except FacegateError as error:
                skipped[folder.name] = error.code
                continue
            people[folder.name] = {"subject_id": done.subject.id, "enrolled": photos[0].name}
            if len(people) % 50 == 0 or len(people) == subjects:
                rate = len(people) / (time.monotonic() - started)
                left = (subjects - len(people)) / rate
                log(f"enrolled {len(people)}/{subjects} ({rate:.1f}/s, ~{left:.0f} s left)")
    finally:
        recognizer.close()
    if len(people) < subjects:
        raise BenchmarkError(f"only {len(people)} identities with a usable face in {faces}")
    manifest = {
        "faces": str(faces),
        "subjects": len(people),
        "identities_scanned": len(people) + len(skipped),
        "skipped_no_usable_face": skipped,
        "enroll_seconds": round(time.monotonic() - started, 1),
        "people": people,
    }
    (data_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


@dataclass(frozen=True)
class Probe:
    person: str
    subject_id: str
    photo: str
    data: bytes


def select_probes(
    data_dir: Path,
    faces: Path,
    manifest: dict[str, Any],
    per_person: int,
    log: Progress = _quiet,
) -> tuple[list[Probe], dict[str, Any]]:
    """Other photos of enrolled people that the library identifies as their own person."""
    from facegate.config import Settings
    from facegate.recognition import FaceRecognizer
    from facegate.types import Verdict

    recognizer = FaceRecognizer.open(Settings(data_dir=data_dir), COLLECTION, create=False)
    kept: list[Probe] = []
    excluded: dict[str, list[str]] = {"no_face": [], "unknown": [], "other_subject": []}
    candidates = 0
    with_others = 0
    started = time.monotonic()
    try:
        people = manifest["people"]
        for n, (person, entry) in enumerate(sorted(people.items()), 1):
            others = [p for p in photos_of(faces / person) if p.name != entry["enrolled"]]
            with_others += bool(others)
            for photo in others[:per_person]:
                candidates += 1
                data = photo.read_bytes()  # as the server gets it
                results = recognizer.identify(data)
                if not results:
                    excluded["no_face"].append(photo.name)
                    continue
                decision = results[0].decision  # the largest face: LFW centres the person
                similarity = f"{decision.match.similarity:.3f}"
                if decision.verdict is not Verdict.MATCH:
                    excluded["unknown"].append(f"{photo.name} ({similarity})")
                elif decision.match.subject_id != entry["subject_id"]:
                    names = {c.subject_id: c.display_name for c in results[0].candidates}
                    matched = names.get(decision.match.subject_id or "", "?")
                    excluded["other_subject"].append(f"{photo.name} -> {matched} ({similarity})")
                else:
                    kept.append(Probe(person, entry["subject_id"], photo.name, data))
            if n % 200 == 0:
                log(f"pre-checked the probes of {n}/{len(people)} people ({len(kept)} kept)")
        point = recognizer.operating_point
    finally:
        recognizer.close()
    summary = {
        "people_with_other_photos": with_others,
        "per_person_at_most": per_person,
        "candidates": candidates,
        "used": len(kept),
        "people_used": len({p.person for p in kept}),
        "excluded": sum(len(v) for v in excluded.values()),
        "excluded_by_reason": {k: len(v) for k, v in excluded.items()},
        "excluded_photos": excluded,
        "operating_point": {
            "model_id": point.model_id,
            "fmr": point.fmr,
            "threshold": point.threshold,
        },
        "precheck_seconds": round(time.monotonic() - started, 1),
    }
    return kept, summary


# --- the server ------------------------------------------------------------------------------
def make_key(data_dir: Path) -> str:
    made = subprocess.run(
        [
            *(sys.executable, "-m", "facegate", "keys", "create", "load benchmark"),
            *("--scope", "recognize", "--collection", COLLECTION, "--json"),
            *("--data-dir", str(data_dir)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret: str = json.loads(made.stdout)["secret"]
    return secret


def server_env(workers: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env["FACEGATE_SERVICE__RATE_LIMIT"] = "0"  # 0: no limit (the default is 10/s per key)
    env["FACEGATE_SERVICE__RATE_BURST"] = "1000000"
    if workers is not None:
        env["FACEGATE_SERVICE__WORKERS"] = str(workers)
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the clients -----------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wrong: list[dict[str, Any]] = field(default_factory=list)
    wrong_answers: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def check_answer(response: httpx.Response, probe: Probe, tally: Tally) -> None:
    if response.status_code != 200:
        tally.error(f"http {response.status_code}")
        return
    faces = response.json().get("faces") or []
    face = faces[0] if faces else None  # largest first, as in the pre-check
    subject = (face or {}).get("subject") or {}
    if face is None or face.get("verdict") != "match" or subject.get("id") != probe.subject_id:
        tally.wrong_answers += 1
        if len(tally.wrong) < 20:
            tally.wrong.append(
                {
                    "probe": probe.photo,
                    "expected": probe.subject_id,
                    "got": subject.get("id"),
                    "got_name": subject.get("name"),
                    "verdict": None if face is None else face.get("verdict"),
                }
            )


async def one_request(
    client: httpx.AsyncClient, key: str, probe: Probe, tally: Tally, record: bool
) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            f"/v1/collections/{COLLECTION}/identify",
            files={"image": (probe.photo, probe.data, "image/jpeg")},
            headers={"Authorization": f"Bearer {key}"},
        )
    except httpx.HTTPError as error:
        tally.error(type(error).__name__)
        return
    finally:
        elapsed = time.perf_counter() - started
    if record:
        tally.latencies.append(elapsed)
    check_answer(response, probe, tally)


async def run_clients(
    base: str, key: str, probes: list[Probe], clients: int, seconds: float
) -> tuple[Tally, Tally, Tally, float]:
    """Warm up (two requests per client, not timed), time 20 requests one at a time (the
    latency without load), then every client sends requests back to back until
    ``seconds`` have passed. Client ``i`` walks the shuffled probes from
    position ``i`` in steps of ``clients``, so requests in flight together are about
    different people."""
    order = probes[:]
    random.Random(0).shuffle(order)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        warm = Tally()
        await asyncio.gather(
            *(
                one_request(client, key, order[i % len(order)], warm, False)
                for i in range(2 * clients)
            )
        )
        alone = Tally()
        for i in range(20):
            await one_request(client, key, order[i % len(order)], alone, True)
        tally = Tally()
        deadline = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            n = i
            while time.perf_counter() < deadline:
                await one_request(client, key, order[n % len(order)], tally, True)
                n += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return tally, warm, alone, elapsed


# --- report ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def machine() -> dict[str, Any]:
    import cv2
    import numpy

    import facegate

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "facegate": facegate.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "numpy": numpy.__version__,
        "httpx": httpx.__version__,
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
        )
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        info["memory_gib"] = round(int(meminfo[1]) / 2**20, 1)
    except (OSError, StopIteration, IndexError):
        pass
    return info


def _load_report(
    tally: Tally, warm: Tally, alone: Tally, elapsed: float, clients: int, seconds: float
) -> dict[str, Any]:
    """Throughput and latency under load, beside the one-at-a-time baseline."""
    errors = sum(tally.errors.values())
    # Every answer has a latency; a request that got no answer counts as an error.
    requests = len(tally.latencies) + sum(
        n for kind, n in tally.errors.items() if not kind.startswith("http ")
    )
    ms = [v * 1000 for v in tally.latencies]
    alone_ms = [v * 1000 for v in alone.latencies]
    throughput = requests / elapsed
    alone_throughput = 1000 / (sum(alone_ms) / len(alone_ms)) if alone_ms else float("nan")
    p50 = percentile(ms, 50)
    alone_p50 = percentile(alone_ms, 50)
    return {
        "requests": requests,
        "errors": errors,
        "errors_by_kind": tally.errors,
        "wrong_answers": tally.wrong_answers,
        "wrong_examples": tally.wrong,
        "throughput_rps": round(throughput, 2),
        "latency_ms": {
            "p50": round(p50, 1),
            "p90": round(percentile(ms, 90), 1),
            "p99": round(percentile(ms, 99), 1),
            "mean": round(sum(ms) / len(ms), 1) if ms else None,
            "max": round(max(ms), 1) if ms else None,
        },
        "unloaded": {
            "requests": len(alone.latencies),
            "p50_ms": round(alone_p50, 1),
            "throughput_rps": round(alone_throughput, 2),
            "errors": sum(alone.errors.values()),
            "wrong_answers": alone.wrong_answers,
        },
        "clients": clients,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 2),
        "warmup": {
            "requests": 2 * clients,
            "errors": sum(warm.errors.values()),
            "wrong_answers": warm.wrong_answers,
        },
        "ratios": {
            "throughput_vs_one_at_a_time": round(throughput / alone_throughput, 2),
            "p50_latency_loaded_vs_unloaded": round(p50 / alone_p50, 2),
        },
    }


def run_load_bench(
    *,
    faces: Path,
    work_dir: Path,
    subjects: int = 1000,
    probes_per_person: int = 3,
    clients: int = 32,
    seconds: float = 60.0,
    workers: int | None = None,
    reuse: bool = False,
    quick: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build (or, with ``reuse``, keep) the gallery in ``work_dir``, start ``facegate
    serve`` on loopback and load it. ``quick``: 30 subjects, 4 clients for 5 s."""
    log = progress or _quiet
    if quick:
        subjects, probes_per_person, clients, seconds = 30, 2, 4, 5.0
    data_dir = work_dir.resolve()
    manifest_path = data_dir / MANIFEST
    reused = reuse and manifest_path.exists()
    if reused:
        manifest = json.loads(manifest_path.read_text())
        if manifest["subjects"] != subjects:
            raise BenchmarkError(
                f"{data_dir} holds {manifest['subjects']} subjects, not {subjects}"
            )
        log(f"reusing the gallery in {data_dir} ({subjects} subjects)")
    else:
        log(f"building a {subjects}-subject gallery")
        manifest = build_gallery(data_dir, faces, subjects, log)
    probes, probe_summary = select_probes(data_dir, faces, manifest, probes_per_person, log)
    log(f"{len(probes)} probes kept, {probe_summary['excluded']} excluded by the pre-check")
    if not probes:
        raise BenchmarkError("no usable probe: every candidate photo was excluded")

    key = make_key(data_dir)
    env = server_env(workers)
    with serving(data_dir, env, data_dir / "serve.log") as (server, base):
        log(f"{clients} clients for {seconds:g} s against {base}")
        load_before = os.getloadavg()
        cpu_before = cpu_seconds(server.pid)
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        tally, warm, alone, elapsed = asyncio.run(run_clients(base, key, probes, clients, seconds))
        server_cpu = cpu_seconds(server.pid) - cpu_before
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        load_after = os.getloadavg()
    client_cpu = (client_after.ru_utime - client_before.ru_utime) + (
        client_after.ru_stime - client_before.ru_stime
    )
    report = _load_report(tally, warm, alone, elapsed, clients, seconds)
    return {
        "benchmark": "load",
        "quick": quick,
        **report,
        "summary": [
            {
                "label": "identify requests/s under load",
                "value": report["throughput_rps"],
                "unit": "req/s",
            },
            {
                "label": "one at a time",
                "value": report["unloaded"]["throughput_rps"],
                "unit": "req/s",
            },
            {"label": "p50 latency under load", "value": report["latency_ms"]["p50"], "unit": "ms"},
            {
                "label": "errors + wrong answers",
                "value": report["errors"] + report["wrong_answers"],
                "unit": "requests",
            },
        ],
        "notes": (
            "Baseline: the same server answering 20 requests one at a time before the load. "
            "throughput_vs_one_at_a_time = requests/s with all clients / requests/s alone."
        ),
        "gallery": {
            "collection": COLLECTION,
            "subjects": manifest["subjects"],
            "identities_scanned": manifest["identities_scanned"],
            "identities_skipped_no_usable_face": len(manifest["skipped_no_usable_face"]),
            "enrolled_with": 'FaceRecognizer.enroll(face="largest", strict=False), first photo',
            "enroll_seconds": manifest["enroll_seconds"],
            "reused": reused,
        },
        "probes": {k: v for k, v in probe_summary.items() if k != "excluded_photos"},
        "probes_excluded_photos": probe_summary["excluded_photos"],
        "server": {
            "command": "python -m facegate serve --host 127.0.0.1 --port PORT --data-dir DIR",
            "workers": workers or ServiceSettings().workers,
            "rate_limit": "off (FACEGATE_SERVICE__RATE_LIMIT=0)",
            "env": {k: v for k, v in env.items() if k.startswith("FACEGATE_")},
            "cpu_seconds": round(server_cpu, 1),
            "cpu_utilisation": round(server_cpu / elapsed, 2),
        },
        "client_process_cpu_seconds": round(client_cpu, 1),
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "environment": machine(),
    }
