"""Safe image decoding from bytes.

The header is read first (format and size) so that a decompression bomb or a file that
is not an image is refused before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from facegate.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnreadableImageError,
    UnsupportedImageFormatError,
)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})

# Leading bytes of the accepted formats: such data that fails to open is corrupt, not alien.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO"})  # MPO: multi-picture JPEG
DEFAULT_MAX_PIXELS = 40_000_000

# We enforce our own limit from the header; Pillow's bomb guard stays as a second line
# (it raises for anything over twice its limit, which we map to ImageTooLargeError).
Image.MAX_IMAGE_PIXELS = 2 * DEFAULT_MAX_PIXELS


def find_image_files(root: Path) -> list[Path]:
    """Every image file under ``root`` by suffix, sorted by relative path. Folder symlinks
    are followed (a photo set of links is common), each real folder once (no loops)."""
    root = Path(root)
    seen: set[str] = set()
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_image_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a regular file for decoding, never more than ``max_bytes`` (a device or a pipe
    named like a photo is refused, not read forever)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UnreadableImageError(f"{path}: not a regular file")
            if info.st_size > max_bytes:
                raise ImageTooLargeError(
                    f"{path.name}: {info.st_size} bytes exceeds the limit of {max_bytes} bytes"
                )
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableImageError(f"{path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:  # the file grew while we read it
        raise ImageTooLargeError(f"{path.name}: more than {max_bytes} bytes")
    return data


def _to_8bit_rgb(image: Image.Image) -> Image.Image:
    """RGB with 8 bits a channel. Pillow clips 16-bit and float greyscale when converting,
    which would turn a normal photo white; scale those down first."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        if image.mode == "I" and top <= 255:
            top = 255.0
        scaled = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a malformed EXIF block leaves the image as stored."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about each unreadable EXIF tag
            return ImageOps.exif_transpose(image)
    except Exception:  # Pillow raises struct.error, KeyError, ... on broken EXIF
        return image


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> NDArray[np.uint8]:
    """Decode JPEG, PNG, WebP or BMP bytes to an ``(H, W, 3)`` BGR uint8 array.

    EXIF orientation is applied. Raises an ``ImageError`` subclass naming the problem.
    """
    if not data:
        raise EmptyImageError("the image is empty (0 bytes)")
    # Pillow's own bomb guard must never be stricter than our configured limit.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 2 * max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"the image has far more pixels than the limit of {max_pixels}"
        ) from exc
    except UnidentifiedImageError as exc:
        if data.startswith(IMAGE_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise CorruptImageError(
                "the image is corrupt or truncated (its header is unreadable)"
            ) from exc
        raise NotAnImageError(
            "the data is not a recognised image (expected JPEG, PNG, WebP or BMP)"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptImageError(f"the image header could not be read: {exc}") from exc

    if image.format not in ALLOWED_FORMATS:
        raise UnsupportedImageFormatError(
            f"image format {image.format} is not accepted (expected JPEG, PNG, WebP or BMP)"
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"the image header gives an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
    # Some libraries (face_recognition) switch this on process-wide; a truncated file must
    # still be refused here.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image.load()
        rgb = _to_8bit_rgb(_upright(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"the image has too many pixels: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError) as exc:
        raise CorruptImageError(f"the image data is corrupt or truncated: {exc}") from exc
    # PIL gives RGB; OpenCV and the models work in BGR.
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
