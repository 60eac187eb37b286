"""Frame sequences for the liveness tests and benchmark, made only from ../shared/data.

- Attacks: one photo of ``../shared/data/spoof`` (upright once its EXIF orientation is
  applied, as its README asks) moved, scaled, rolled and perspective-warped, as a printed
  photo or a tablet is tilted in front of a camera, following the challenge: tilted about
  the vertical axis for a turn, about the horizontal axis for a nod. ``print``:
  image_F1.jpg, a printed photo; ``screen``: image_F2.jpg, a face on a tablet;
  ``real_photo``: image_T1.jpg, a live face, which is still only a photo once printed.
  An adaptive attacker instead tilts the photo, for each step, the way that our detector
  reads best as that step (found by searching a grid of tilts offline); a screen attacker
  may also mirror the picture.
- Genuine (synthetic): LFW photos of one person whose landmarks show the poses needed,
  in the challenge's order, each shown for a few frames with camera-like jitter. This is
  NOT a live capture: different photos, taken years apart, stand in for the moves of one
  head. It tests the protocol (order, timing, one face throughout), not liveness itself.
- Face swap: a genuine sequence with one step shown by another person.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from facegate.policy.liveness import Pose
from facegate.vision.decode import decode_image

Image = NDArray[np.uint8]
FPS = 10.0
SPOOF = {"print": "image_F1.jpg", "screen": "image_F2.jpg", "real_photo": "image_T1.jpg"}

# LFW people with single-face photos in each pose our classifier reads, found by running
# the detector over every photo of ../shared/data/faces (pose_ratios of the central face)
# and keeping photos that read as their pose in most of 16 jittered copies and resemble
# the person's frontal photos (docs/liveness.md). LFW has few raised or lowered heads: each
# person has one of up/down at most, except Colin Powell. Photo numbers per pose; the
# first centre photo opens every sequence (the session's first face).
GENUINE: dict[str, dict[Pose, tuple[int, ...]]] = {
    "Colin_Powell": {
        Pose.CENTRE: (164, 33, 231),
        Pose.LEFT: (234,),
        Pose.RIGHT: (18, 88, 104),
        Pose.UP: (122,),
        Pose.DOWN: (196,),
    },
    "Tony_Blair": {
        Pose.CENTRE: (140, 128),
        Pose.LEFT: (54, 100),
        Pose.RIGHT: (4, 138, 71),
        Pose.DOWN: (108, 37, 75),
    },
    "Tom_Ridge": {
        Pose.CENTRE: (31, 23, 5),
        Pose.LEFT: (32,),
        Pose.RIGHT: (1, 4),
        Pose.DOWN: (16,),
    },
    "Hugo_Chavez": {
        Pose.CENTRE: (21, 70, 53),
        Pose.LEFT: (3,),
        Pose.RIGHT: (26, 34),
        Pose.UP: (39,),
    },
    "Eduardo_Duhalde": {
        Pose.CENTRE: (10, 14, 11),
        Pose.LEFT: (9,),
        Pose.RIGHT: (12,),
        Pose.DOWN: (1,),
    },
    "Bill_Frist": {
        Pose.CENTRE: (3, 1),
        Pose.LEFT: (8, 9),
        Pose.RIGHT: (2, 5),
        Pose.UP: (7,),
    },
}


@dataclass(frozen=True, slots=True)
class Shot:
    """One frame of a sequence: the picture and when the server is to receive it."""

    image: Image
    at: datetime

    def jpeg(self) -> bytes:
        ok, data = cv2.imencode(".jpg", self.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        return data.tobytes()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.jpeg()).hexdigest()


def can_perform(person: str, challenge: Sequence[Pose]) -> bool:
    return all(p in GENUINE[person] for p in challenge)


def lfw_photo(faces_root: Path, person: str, number: int) -> Path:
    return faces_root / person / f"{person}_{number:04d}.jpg"


@cache
def load(path: Path) -> Image:
    """A photo as the service decodes it (EXIF orientation applied)."""
    return decode_image(Path(path).read_bytes(), 50_000_000)


def spoof_photo(data_root: Path, kind: str) -> Image:
    image = load(data_root / "spoof" / SPOOF[kind])
    assert image.shape[0] > image.shape[1], "the spoof photos are portrait once upright"
    return image


# --- geometry -----------------------------------------------------------------------------
def tilt_homography(
    width: int,
    height: int,
    *,
    about: float = 0.0,
    angle: float = 0.0,
    roll: float = 0.0,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    focal: float = 1.0,
) -> NDArray[np.float64]:
    """The homography of a flat picture tilted by ``angle`` degrees about an in-plane axis
    ``about`` degrees from the horizontal (0: nod-like tilt, 90: turn-like), rolled,
    scaled and shifted, seen by a pinhole camera of focal length ``focal`` x the picture's
    larger side."""
    f = focal * max(width, height)
    a, t, r = np.radians([about, angle, roll])

    def rot_z(v: float) -> NDArray[np.float64]:
        return np.array([[np.cos(v), -np.sin(v), 0], [np.sin(v), np.cos(v), 0], [0, 0, 1]])

    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    rotation = rot_z(r) @ rot_z(a) @ tilt @ rot_z(-a)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    projected = []
    for u, v in corners:
        x = rotation @ np.array([u - width / 2, v - height / 2, 0.0])
        x += np.array([shift[0], shift[1], f / scale])
        projected.append([f * x[0] / x[2] + width / 2, f * x[1] / x[2] + height / 2])
    return cv2.getPerspectiveTransform(
        corners.astype(np.float32), np.array(projected, dtype=np.float32)
    ).astype(np.float64)


def _room(photo: Image) -> Image:
    """A dim, blurred backdrop made from the photo itself (cheaply, at 1/16 size)."""
    height, width = photo.shape[:2]
    small = cv2.resize(photo, (max(1, width // 16), max(1, height // 16)), cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.5)
    return (cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR) * 0.45).astype(
        np.uint8
    )


def show_tilted(photo: Image, mirror: bool = False, **tilt: float | tuple[float, float]) -> Image:
    """The photo, tilted (see ``tilt_homography``), over a dim blurred room."""
    height, width = photo.shape[:2]
    picture = photo[:, ::-1] if mirror else photo
    room = _room(photo)
    matrix = tilt_homography(width, height, **tilt)  # type: ignore[arg-type]
    warped = cv2.warpPerspective(np.ascontiguousarray(picture), matrix, (width, height))
    mask = cv2.warpPerspective(np.full((height, width), 255, np.uint8), matrix, (width, height))
    out = room.copy()
    out[mask > 0] = warped[mask > 0]
    return out


def jitter(image: Image, rng: random.Random, amount: float = 1.0) -> Image:
    """A camera's frame-to-frame wobble: a pixel or two of shift, a little scale and roll,
    and sensor noise, so that no two frames are byte-identical."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(
        (width / 2, height / 2), rng.uniform(-1.5, 1.5) * amount, 1 + rng.uniform(-0.02, 0.02)
    )
    matrix[:, 2] += [rng.uniform(-2, 2) * amount, rng.uniform(-2, 2) * amount]
    moved = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 2.0, moved.shape)
    return np.clip(moved + noise, 0, 255).astype(np.uint8)


# --- attack sequences ------------------------------------------------------------------------
# A naive attacker tilts the photo the way the head should turn: about the vertical axis
# for left and right, about the horizontal axis for up and down.
NAIVE_TILT: dict[Pose, tuple[float, float]] = {
    Pose.LEFT: (90.0, 40.0),
    Pose.RIGHT: (90.0, -40.0),
    Pose.UP: (0.0, 40.0),
    Pose.DOWN: (0.0, -40.0),
}


@dataclass(frozen=True, slots=True)
class Tilt:
    about: float
    angle: float
    focal: float = 1.0
    mirror: bool = False


def attack_frames(
    photo: Image,
    challenge: Sequence[Pose],
    start: datetime,
    rng: random.Random,
    tilts: dict[Pose, Tilt] | None = None,
    *,
    precise: bool = False,
) -> list[Shot]:
    """A photo moved through the challenge at 10 frames a second: three frames facing the
    camera, then per step a tilt (``tilts``, else the naive one) and back, with drift,
    scale and roll throughout. A naive attacker eases into each tilt over three frames and
    holds it two; a ``precise`` one (with a stand, say) jumps straight to it, holds it
    three frames and barely wobbles."""
    shots: list[Shot] = []
    wobble = 0.3 if precise else 1.0

    def add(tilt: Tilt, weight: float) -> None:
        image = show_tilted(
            photo,
            mirror=tilt.mirror,
            about=tilt.about,
            angle=tilt.angle * weight,
            roll=rng.uniform(-6, 6) * wobble,
            scale=1 + rng.uniform(-0.12, 0.1) * wobble,
            shift=(rng.uniform(-30, 30) * wobble, rng.uniform(-30, 30) * wobble),
            focal=tilt.focal,
        )
        at = start + timedelta(seconds=len(shots) / FPS)
        shots.append(Shot(jitter(image, rng), at))

    rest = Tilt(0.0, 0.0)
    for _ in range(3):
        add(rest, 0.0)
    for pose in challenge:
        if pose is Pose.CENTRE:
            for _ in range(3):
                add(rest, 0.0)
            continue
        about, angle = NAIVE_TILT[pose]
        tilt = (tilts or {}).get(pose, Tilt(about, angle))
        if precise:
            for _ in range(3):
                add(tilt, 1.0)
            add(rest, 0.0)
            continue
        for weight in (0.25, 0.5, 0.75, 1.0, 1.0, 0.4):
            add(tilt, weight)
    return shots


def tilt_grid(mirrors: Sequence[bool] = (False,)) -> Iterator[Tilt]:
    """The tilts an adaptive attacker tries offline: axes every 15 degrees, angles up to
    75 degrees either way, near and far cameras, and (for a screen) mirrored pictures."""
    for mirror in mirrors:
        for about in range(-90, 90, 15):
            for angle in range(-75, 76, 15):
                if angle == 0:
                    continue
                for focal in (0.6, 1.0, 2.0):
                    yield Tilt(float(about), float(angle), focal, mirror)


# --- genuine sequences -------------------------------------------------------------------------
def genuine_frames(
    faces_root: Path,
    person: str,
    challenge: Sequence[Pose],
    start: datetime,
    rng: random.Random,
    *,
    hold: int = 5,
    swap: tuple[int, str] | None = None,
) -> list[Shot]:
    """Photos of ``person`` in the challenge's poses: two frames facing the camera, then
    per step ``hold`` frames (half a second) of a photo in that pose, and one frame back at the
    centre between steps, 0.1 s apart. ``swap=(step, other)``: that step is shown by
    ``other``."""
    centre = load(lfw_photo(faces_root, person, GENUINE[person][Pose.CENTRE][0]))
    shots: list[Shot] = []

    def add(image: Image) -> None:
        at = start + timedelta(seconds=len(shots) / FPS)
        shots.append(Shot(jitter(image, rng), at))

    for _ in range(2):
        add(centre)
    for index, pose in enumerate(challenge):
        who = swap[1] if swap is not None and swap[0] == index else person
        photo = load(lfw_photo(faces_root, who, rng.choice(GENUINE[who][pose])))
        for _ in range(hold):
            add(photo)
        if pose is not Pose.CENTRE and index + 1 < len(challenge) - 1:
            add(centre)
    return shots


def swap_partner(person: str, pose: Pose) -> str:
    """Another GENUINE person who has a photo in ``pose``."""
    return next(p for p in GENUINE if p != person and pose in GENUINE[p])


# --- video ------------------------------------------------------------------------------------
def encode_mp4(images: Sequence[Image], fps: float = FPS) -> bytes:
    """An H.264 MP4 of the frames (PyAV), made in memory."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        height, width = images[0].shape[:2]
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for image in images:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[: stream.height, : stream.width]), format="bgr24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
