"""Safe decoding: every kind of bad input gets its own clear error."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegate.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnreadableImageError,
    UnsupportedImageFormatError,
)
from facegate.vision.decode import decode_image, find_image_files, read_image_bytes
from helpers import png_header_only


def encoded(fmt: str, size: tuple[int, int] = (40, 30), **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyImageError),
        (b"this is plain text, not a picture\n" * 10, NotAnImageError),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n", NotAnImageError),
        (encoded("JPEG")[:200], CorruptImageError),
        (png_header_only(640, 480)[:20], CorruptImageError),  # PNG signature, cut short
        (png_header_only(50_000, 50_000), ImageTooLargeError),
        (png_header_only(8_000, 6_000), ImageTooLargeError),  # 48 MP > 40 MP default
        (encoded("GIF"), UnsupportedImageFormatError),
        (encoded("TIFF"), UnsupportedImageFormatError),
    ],
    ids=[
        "empty",
        "text",
        "pdf",
        "truncated-jpeg",
        "cut-png",
        "50k-png-header",
        "48mp-header",
        "gif",
        "tiff",
    ],
)
def test_bad_input_has_its_own_error(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_accepted_formats_decode_to_bgr(fmt: str) -> None:
    image = decode_image(encoded(fmt))
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    b, g, r = image[15, 20].astype(int)
    assert abs(r - 200) < 8 and abs(g - 100) < 8 and abs(b - 50) < 8  # BGR order


def test_pixel_limit_is_configurable() -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(encoded("PNG", (100, 100)), max_pixels=9_999)
    assert decode_image(encoded("PNG", (100, 100)), max_pixels=10_000).shape == (100, 100, 3)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = encoded("JPEG", (40, 30), exif=exif.tobytes())
    assert decode_image(data).shape == (40, 30, 3)


def test_corrupted_exif_never_escapes_as_a_crash() -> None:
    # Flip every byte of a small EXIF block in turn: each variant decodes (unrotated if the
    # EXIF is unreadable) or raises an ImageError, never anything else.
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "camera maker"
    data = encoded("JPEG", (40, 30), exif=exif.tobytes())
    start = data.index(b"Exif\x00\x00")
    for offset in range(start, start + 60):
        for value in (0x00, 0xFF, 0x7F):
            mutated = bytearray(data)
            mutated[offset] = value
            with contextlib.suppress(ImageError):
                assert decode_image(bytes(mutated)).ndim == 3


def test_16_bit_greyscale_png_keeps_its_picture() -> None:
    grey = (np.tile(np.arange(0, 40, dtype=np.uint16), (30, 1)) * 1000 + 5000).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue())
    assert image.shape == (30, 40, 3)
    assert 0 < int(image.min()) < int(image.max()) < 255  # scaled, not clipped to white


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "missing"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = {"device": Path("/dev/zero"), "directory": tmp_path, "missing": tmp_path / "x.jpg"}.get(
        kind, tmp_path / "fifo.jpg"
    )
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(UnreadableImageError):
        read_image_bytes(path, 1_000_000)


def test_byte_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(encoded("PNG", (100, 100)))
    with pytest.raises(ImageTooLargeError):
        read_image_bytes(path, 10)


def test_image_files_are_found_through_folder_links_without_looping(tmp_path: Path) -> None:
    real = tmp_path / "real" / "Ann"
    real.mkdir(parents=True)
    (real / "a.JPG").write_bytes(encoded("JPEG"))
    (real / "notes.txt").write_text("not an image")
    root = tmp_path / "root"
    root.mkdir()
    (root / "Ann").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(real, target_is_directory=True)  # a cycle
    assert [p.relative_to(root).as_posix() for p in find_image_files(root)] == ["Ann/a.JPG"]
