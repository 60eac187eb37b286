"""Service pieces without a server: the token bucket, problem types, base64 input."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate import errors
from facegate.service.images import decode_base64
from facegate.service.limits import TokenBucket, retry_after_header
from facegate.service.problems import PROBLEM_BASE, Problem, from_facegate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, now=clock)
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("a")
    assert wait == pytest.approx(0.5)
    assert retry_after_header(wait) == "1"
    assert bucket.take("b") == 0.0  # every key has its own bucket
    clock.now += 0.5
    assert bucket.take("a") == 0.0
    clock.now += 100
    assert [bucket.take("a") for _ in range(4)][-1] > 0  # never more than the burst


def test_rate_zero_means_no_limit() -> None:
    bucket = TokenBucket(rate=0, burst=1, now=Clock())
    assert all(bucket.take("a") == 0.0 for _ in range(100))


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (errors.NotAnImageError("x"), 422, "not-an-image"),
        (errors.EmptyImageError("x"), 422, "empty-image"),
        (errors.CorruptImageError("x"), 422, "corrupt-image"),
        (errors.UnsupportedImageFormatError("x"), 422, "unsupported-image-format"),
        (errors.ImageTooLargeError("x"), 413, "image-too-large"),
        (errors.NoFaceError("x"), 422, "no-face"),
        (errors.MultipleFacesError("x", 3), 422, "multiple-faces"),
        (errors.LowQualityError("x", 0.1, ("blurred",)), 422, "low-quality"),
        (errors.UnknownSubjectError("x"), 404, "unknown-subject"),
        (errors.UnknownCollectionError("x"), 404, "unknown-collection"),
        (errors.UnknownTemplateError("x"), 404, "unknown-template"),
        (errors.DuplicateSubjectError("x"), 409, "duplicate-subject"),
        (errors.EmptyGalleryError("x"), 409, "empty-gallery"),
        (errors.ModelMismatchError("x"), 409, "model-mismatch"),
        (errors.ConfigError("x"), 422, "config-error"),
        (errors.ModelIntegrityError("x"), 500, "model-integrity"),
    ],
)
def test_every_library_error_has_a_stable_problem_type(
    error: errors.FacegateError, status: int, slug: str
) -> None:
    body = from_facegate(error).body("/v1/x")
    assert body["status"] == status and body["type"] == PROBLEM_BASE + slug
    assert body["detail"] == "x" and body["instance"] == "/v1/x"
    if isinstance(error, errors.LowQualityError):
        assert body["reasons"] == ["blurred"] and body["quality"] == 0.1
    if isinstance(error, errors.MultipleFacesError):
        assert body["count"] == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("aGVsbG8=", b"hello"), ("aGVs\nbG8=", b"hello"), ("data:image/jpeg;base64,aGk=", b"hi")],
)
def test_base64_input(text: str, expected: bytes) -> None:
    assert decode_base64(text, "image_base64") == expected


@pytest.mark.parametrize("text", ["not base64!", "aGVsbG8", "%%%%"])
def test_base64_garbage_is_a_problem(text: str) -> None:
    with pytest.raises(Problem) as caught:
        decode_base64(text, "image_base64")
    assert caught.value.status == 400 and caught.value.slug == "invalid-base64"


def test_a_full_inference_queue_sheds_load_with_503(tmp_path: Path) -> None:
    import threading

    import anyio

    from facegate.config import ServiceSettings, Settings
    from facegate.service.state import ServiceState

    settings = Settings(data_dir=tmp_path, service=ServiceSettings(workers=1, max_queue=1))
    state = ServiceState(settings)
    release = threading.Event()
    outcomes: list[object] = []

    async def scenario() -> None:
        async def call(func: object) -> None:
            try:
                outcomes.append(await state.infer(func))  # type: ignore[arg-type]
            except Problem as problem:
                outcomes.append(problem)

        async with anyio.create_task_group() as group:
            group.start_soon(call, lambda: release.wait(10) and "first")  # takes the only worker
            await anyio.sleep(0.2)
            group.start_soon(call, lambda: "queued")  # waits: the queue holds one
            await anyio.sleep(0.2)
            await call(lambda: "shed")  # worker busy, queue full: refused at once
            release.set()

    anyio.run(scenario)
    shed = [o for o in outcomes if isinstance(o, Problem)]
    assert len(shed) == 1 and shed[0].status == 503 and shed[0].headers == {"Retry-After": "1"}
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["first", "queued"]
