"""Two real ``facegate serve`` processes on one PostgreSQL database (stateless replicas):
a person enrolled through one is identified through the other at once, and an erasure
through one is honoured by the other at once. Real photos, real processes, real server."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from facegate.service.state import BOOTSTRAP_KEY_FILE
from helpers import CONSENT_JSON


@dataclass
class Replica:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def replica(data_dir: Path, env: dict[str, str]) -> Iterator[Replica]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "facegate", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "FACEGATE_DATA_DIR": str(data_dir)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "facegate serve did not become ready"
            time.sleep(0.1)
        yield Replica(url, data_dir, process)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


def photo(faces_root: Path, person: str, n: int) -> str:
    return base64.b64encode((faces_root / person / f"{person}_{n:04d}.jpg").read_bytes()).decode()


def call(replica: Replica, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, replica.url + path, headers=headers, timeout=120, **kw)


def named(answer: httpx.Response) -> set[str]:
    """Subject ids named as a match, and ids among the candidates, in an identify answer."""
    assert answer.status_code == 200, answer.text
    faces = answer.json()["faces"]
    return {f["subject"]["id"] for f in faces if f["subject"]} | {
        c["subject_id"] for f in faces for c in f["candidates"]
    }


@pytest.mark.parametrize("search", ["database", "memory"])
def test_two_replicas_share_one_postgresql_gallery(
    postgres_url: str, tmp_path: Path, faces_root: Path, search: str
) -> None:
    """``database``: pgvector searches; ``memory``: each replica searches its own index of
    decrypted templates and must notice the other's writes before answering."""
    # Replicas share the database and the data key (here from the environment).
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {
        "FACEGATE_DATABASE_URL": postgres_url,
        "FACEGATE_ENCRYPTION__KEYS": f"shared:{key}",
        "FACEGATE_DATABASE_SEARCH": str(search == "database").lower(),
    }
    with replica(tmp_path / "a", env) as a:
        admin = (a.data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        with replica(tmp_path / "b", env) as b:
            assert not (b.data_dir / BOOTSTRAP_KEY_FILE).exists()  # the key is in the database
            assert (
                call(b, admin, "POST", "/v1/collections", json={"name": "dorm"}).status_code == 201
            )
            ids = {}
            for person in ("Colin_Powell", "Tony_Blair"):
                made = call(
                    a,
                    admin,
                    "POST",
                    "/v1/collections/dorm/subjects",
                    json={"name": person, "consent": CONSENT_JSON},
                )
                assert made.status_code == 201, made.text
                ids[person] = made.json()["id"]
                enrolled = call(
                    a,
                    admin,
                    "POST",
                    f"/v1/collections/dorm/subjects/{ids[person]}/faces",
                    json={"images_base64": [photo(faces_root, person, 2)], "face": "largest"},
                )
                assert enrolled.status_code == 201, enrolled.text

            # Enrolled through A, identified through B straight away.
            probe = {"image_base64": photo(faces_root, "Colin_Powell", 6)}
            answer = call(b, admin, "POST", "/v1/collections/dorm/identify", json=probe)
            largest = answer.json()["faces"][0]
            assert largest["verdict"] == "match", answer.text
            assert largest["subject"]["id"] == ids["Colin_Powell"]

            # Erased through A: B never names the person again, from the next request on.
            erased = call(
                a, admin, "DELETE", f"/v1/collections/dorm/subjects/{ids['Colin_Powell']}"
            )
            assert erased.status_code == 204
            after = call(b, admin, "POST", "/v1/collections/dorm/identify", json=probe)
            assert ids["Colin_Powell"] not in named(after)
            assert after.json()["faces"][0]["verdict"] == "unknown"
            gone = call(b, admin, "GET", f"/v1/collections/dorm/subjects/{ids['Colin_Powell']}")
            assert gone.status_code == 404

            # The other person is still found through either replica.
            other = {"image_base64": photo(faces_root, "Tony_Blair", 3)}
            for replica_ in (a, b):
                found = call(replica_, admin, "POST", "/v1/collections/dorm/identify", json=other)
                assert ids["Tony_Blair"] in named(found)

            # One audit chain for both replicas, intact.
            verified = call(b, admin, "GET", "/v1/audit/verify")
            assert verified.json() == {"intact": True, "first_broken_seq": None}
            actions = [
                e["action"]
                for e in call(a, admin, "GET", "/v1/audit", params={"limit": 500}).json()["items"]
            ]
            assert {"subject.erase", "enroll", "identify", "collection.create"} <= set(actions)


def test_a_replica_without_the_data_key_refuses_to_start(postgres_url: str, tmp_path: Path) -> None:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {"FACEGATE_DATABASE_URL": postgres_url, "FACEGATE_ENCRYPTION__KEYS": f"k1:{key}"}
    with replica(tmp_path / "a", env):
        pass
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    wrong = subprocess.run(
        [sys.executable, "-m", "facegate", "serve", "--port", str(free_port())],
        env={
            **os.environ,
            **env,
            "FACEGATE_ENCRYPTION__KEYS": f"k1:{other}",
            "FACEGATE_DATA_DIR": str(tmp_path / "b"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert wrong.returncode == 6, wrong.stderr
    said = " ".join(wrong.stderr.split())  # rich wraps long lines
    assert "is not the key that encrypted" in said
    assert "postgres:***@" in said  # the URL is named, its password never
