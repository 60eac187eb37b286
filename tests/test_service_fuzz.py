"""A schemathesis fuzz run of the service's own OpenAPI schema over real HTTP on loopback:
whatever a client sends, no answer is a 5xx.

The schema is read from ``GET /openapi.json`` of a uvicorn server started here on a
throwaway data dir. Every operation in it is fuzzed with schema-conforming (positive) and
schema-violating (negative) requests, a bounded number of each. Random names rarely hit
anything that exists, so some cases are pointed at a seeded collection, subject, template
and key, and some carry a real photo in place of the generated image bytes: that reaches
enrolment, identify and verify with real faces and fuzzed parameters. Most requests use an
admin key; a few keep the auth headers schemathesis made up (answered 401, never 5xx).

Bounds: ``FUZZ_EXAMPLES`` cases per operation and mode (default 25), generated
from a fixed seed so that CI sees the same requests every run; ``FUZZ_SEED=N``
explores other ones. (Not ``FACEGATE_*``: the settings refuse unknown variables there.)
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.result import Err, Ok

from facegate.config import ServiceSettings, Settings
from facegate.service.routes import event_stream
from facegate.service.state import BOOTSTRAP_KEY_FILE
from helpers import CONSENT_JSON, running_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("FUZZ_SEED")
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
AUTH_HEADERS = ("authorization", "x-api-key")
# Each case is sent as generated, or pointed at the seeded records, or that and a real photo;
# with the admin key, or with the auth headers schemathesis generated.
TARGETS = ("generated", "known", "known", "photo", "photo")
AUTH = ("admin", "admin", "admin", "admin", "generated")


@dataclass
class Known:
    """Records that exist on the fuzzed server, for cases pointed at them."""

    collection: str
    subject_id: str
    external_id: str
    template_id: str
    key_id: str
    photo: bytes
    probe: bytes


@dataclass
class Target:
    base: str
    admin: str
    known: Known


@dataclass
class Tally:
    """What one operation was sent and answered."""

    statuses: Counter[int] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


@dataclass
class ServerError:
    operation: str
    status: int
    method: str
    path: str
    body: str
    curl: str
    answer: str

    def __str__(self) -> str:
        return (
            f"{self.status} from {self.operation}: {self.method} {self.path}\n"
            f"  body: {self.body}\n  answer: {self.answer}\n  reproduce: {self.curl}"
        )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, faces_root: Path) -> Iterator[Target]:
    data_dir = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        data_dir=data_dir, service=ServiceSettings(rate_limit=0, max_upload_bytes=2_000_000)
    )
    person = faces_root / "Colin_Powell"
    photo = (person / "Colin_Powell_0001.jpg").read_bytes()
    probe = (person / "Colin_Powell_0002.jpg").read_bytes()
    with (
        pytest.MonkeyPatch.context() as patch,
        running_server(settings) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        # The live event stream would hold each fuzzed request open for its whole life
        # (an hour; schemathesis reads until its own timeout): end streams after 1 s.
        patch.setattr(event_stream, "MAX_LIFE_S", 1.0)
        admin = (data_dir / BOOTSTRAP_KEY_FILE).read_text().strip()
        client.headers["Authorization"] = f"Bearer {admin}"
        assert client.post("/v1/collections", json={"name": "fuzz"}).status_code == 201
        made = client.post(
            "/v1/collections/fuzz/subjects",
            json={"name": "Colin Powell", "external_id": "cp-1", "consent": CONSENT_JSON},
        )
        assert made.status_code == 201, made.text
        subject_id = made.json()["id"]
        enrolled = client.post(
            f"/v1/collections/fuzz/subjects/{subject_id}/faces",
            files={"images": ("cp.jpg", photo, "image/jpeg")},
            data={"face": "largest"},
        )
        assert enrolled.status_code == 201, enrolled.text
        key = client.post("/v1/keys", json={"name": "fuzzed", "scopes": ["read"]})
        assert key.status_code == 201, key.text
        known = Known(
            collection="fuzz",
            subject_id=subject_id,
            external_id="cp-1",
            template_id=enrolled.json()["templates"][0]["id"],
            key_id=key.json()["id"],
            photo=photo,
            probe=probe,
        )
        yield Target(base, admin, known)


def _point_at_known(case: Case, known: Known, photo: bool, by_external_id: bool) -> None:
    """Aim ``case`` at the seeded records (and, with ``photo``, send real photos)."""
    ids = {
        "collection": known.collection,
        "subject_id": known.subject_id,
        "template_id": known.template_id,
        "key_id": known.key_id,
    }
    if case.path_parameters:
        case.path_parameters = {
            name: ids.get(name, value) for name, value in case.path_parameters.items()
        }
    if not isinstance(case.body, dict):
        return
    body: dict[str, Any] = dict(case.body)
    if "subject_id" in body:  # verify names its subject in the body
        body["subject_id"] = known.external_id if by_external_id else known.subject_id
    if photo:
        for name, value in list(body.items()):
            image = known.photo if name.startswith(("images", "image_a")) else known.probe
            if name.endswith("_base64"):
                text = base64.b64encode(image).decode()
                body[name] = [text] * min(len(value), 2) if isinstance(value, list) else text
            elif name in ("image", "images", "image_a", "image_b"):
                body[name] = [image] * min(len(value), 2) if isinstance(value, list) else image
    case.body = body


def _body_summary(case: Case) -> str:
    def short(value: Any) -> Any:
        if isinstance(value, bytes | bytearray) or type(value).__name__ == "Binary":
            data = bytes(getattr(value, "data", value))
            return f"<{len(data)} bytes {data[:16]!r}>"
        if isinstance(value, str) and len(value) > 80:
            return value[:80] + f"...<{len(value)} chars>"
        if isinstance(value, list):
            return [short(v) for v in value]
        if isinstance(value, dict):
            return {k: short(v) for k, v in value.items()}
        return value

    body = case.body if isinstance(case.body, dict | list | str | bytes) else None
    return "(none)" if body is None else f"{case.media_type} {short(body)!r}"


def _fuzz_operation(
    operation: APIOperation,
    mode: GenerationMode,
    target: Target,
    session: requests.Session,
    tally: Tally,
    failures: list[ServerError],
) -> None:
    strategy = st.tuples(
        operation.as_strategy(generation_mode=mode),
        st.sampled_from(TARGETS),
        st.sampled_from(AUTH),
        st.booleans(),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        phases=[Phase.generate],  # no shrinking: every 5xx is collected, not raised
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(drawn=strategy)
    def run(drawn: tuple[Case, str, str, bool]) -> None:
        case, aim, auth, by_external_id = drawn
        if aim != "generated":
            _point_at_known(case, target.known, aim == "photo", by_external_id)
        headers = None
        if auth == "admin":
            for name in [k for k in case.headers or {} if k.lower() in AUTH_HEADERS]:
                del case.headers[name]
            headers = {"Authorization": f"Bearer {target.admin}"}
        response = case.call(base_url=target.base, session=session, headers=headers, timeout=60)
        tally.statuses[response.status_code] += 1
        tally.modes[mode.value] += 1
        if response.status_code >= 500:
            failures.append(
                ServerError(
                    operation=operation.label,
                    status=response.status_code,
                    method=case.method.upper(),
                    path=case.formatted_path,
                    body=_body_summary(case),
                    curl=case.as_curl_command(headers=headers, base_url=target.base),
                    answer=response.text[:300],
                )
            )

    if SEED is not None:
        run = seed(int(SEED))(run)
    try:
        run()
    except Unsatisfiable:
        # e.g. GET /health: no parameter, no body, no auth, so nothing to make invalid.
        tally.notes.append(f"no {mode.value} case exists")


def _order(operation: APIOperation) -> tuple[int, int]:
    """Changes to the seeded records last: updates, then erasures (withdrawing consent
    erases too), then deletions (deepest first, the collection itself at the very end), so
    that the other operations still find them."""
    method = operation.method.upper()
    if operation.path.endswith("/consent/withdraw"):
        return (2, -100)
    if method not in ("PATCH", "DELETE"):
        return (0, 0)
    if method == "PATCH":
        return (1, 0)
    return (2, -operation.path.count("/") - (operation.path == "/v1/keys/{key_id}"))


def test_fuzzing_the_openapi_schema_gives_no_server_error(target: Target) -> None:
    schema = schemathesis.openapi.from_url(f"{target.base}/openapi.json", timeout=60)
    loaded = list(schema.get_all_operations())
    invalid = [str(result.err()) for result in loaded if isinstance(result, Err)]
    assert not invalid, f"operations schemathesis cannot use: {invalid}"
    operations = sorted((result.ok() for result in loaded if isinstance(result, Ok)), key=_order)
    labels = [op.label for op in operations]
    assert len(operations) >= 20 and "POST /v1/collections/{collection}/identify" in labels
    tallies = {label: Tally() for label in labels}
    failures: list[ServerError] = []
    started = time.monotonic()
    with requests.Session() as session:
        for operation in operations:
            for mode in MODES:
                _fuzz_operation(
                    operation, mode, target, session, tallies[operation.label], failures
                )
    elapsed = time.monotonic() - started

    report = _report(tallies, elapsed)
    print(report)
    assert not failures, f"{len(failures)} server error(s):\n" + "\n".join(map(str, failures))
    unexercised = [label for label, t in tallies.items() if not t.modes["positive"]]
    assert not unexercised, f"operations never exercised: {unexercised}\n{report}"
    if EXAMPLES >= 10:  # the seeded records and real photos were reached
        assert tallies["POST /v1/collections/{collection}/identify"].statuses[200], report
    # The server is still healthy and its audit chain intact after all that.
    with httpx.Client(base_url=target.base, timeout=60) as client:
        assert client.get("/ready").status_code == 200
        intact = client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {target.admin}"})
        assert intact.json()["intact"] is True, intact.text


def _report(tallies: dict[str, Tally], elapsed: float) -> str:
    total = sum(sum(t.statuses.values()) for t in tallies.values())
    lines = [f"schemathesis fuzz: {len(tallies)} operations, {total} requests, {elapsed:.1f} s"]
    for label, tally in tallies.items():
        statuses = " ".join(f"{s}x{n}" for s, n in sorted(tally.statuses.items()))
        modes = "/".join(f"{tally.modes[m.value]}" for m in MODES)
        notes = f" ({'; '.join(tally.notes)})" if tally.notes else ""
        lines.append(f"  {label:<72} +/-: {modes:<7} {statuses}{notes}")
    return "\n".join(lines)
