"""One strict settings tree, from ``FACEGATE_*`` environment variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

FMR_CHOICES = (1e-2, 1e-3, 1e-4)


# FACEGATE_* variables that are not settings fields.
NON_SETTING_VARIABLES = frozenset({"FACEGATE_CONFIG"})


def check_environment(settings_cls: type[BaseSettings]) -> None:
    """Refuse a FACEGATE_* variable that names no setting: a typo such as FACEGATE_FRM
    must not silently leave the default in force. (Nested keys are checked by the
    sub-models, which forbid extra fields.)"""
    fields = set(settings_cls.model_fields)
    for name in os.environ:
        upper = name.upper()
        if not upper.startswith("FACEGATE_") or upper in NON_SETTING_VARIABLES:
            continue
        top = upper.removeprefix("FACEGATE_").split("__", 1)[0].lower()
        if top not in fields:
            known = ", ".join(f"FACEGATE_{f.upper()}" for f in sorted(fields))
            raise ValueError(f"unknown setting {name}; known: {known}, FACEGATE_CONFIG")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "facegate"


class VisionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pixels: int = Field(
        40_000_000,
        ge=1,
        description="Refuse images with more pixels than this (read from the header).",
    )
    max_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="Refuse encoded images larger than this."
    )
    detection_threshold: float = Field(0.6, gt=0, lt=1, description="YuNet face score threshold.")
    nms_threshold: float = Field(0.3, gt=0, lt=1, description="YuNet non-maximum suppression IoU.")
    min_face_size: int = Field(20, ge=1, description="Ignore faces narrower than this many pixels.")
    max_detection_side: int = Field(
        1280,
        ge=64,
        description="Images are downscaled so the longer side is at most this for detection.",
    )
    flip_average: bool = Field(
        False, description="Average SFace embeddings of the face and its mirror (2x the cost)."
    )
    detector_backend: Literal["auto", "opencv", "onnxruntime"] = Field(
        "auto",
        description="Run YuNet through OpenCV's FaceDetectorYN or onnxruntime (same faces, "
        "1.5-1.8x as fast on one core); auto (default): onnxruntime when importable.",
    )
    embedder_backend: Literal["auto", "opencv", "onnxruntime"] = Field(
        "auto",
        description="Run SFace through OpenCV's DNN or onnxruntime (same embeddings; "
        "onnxruntime 13.4 ms a face on one thread against 15.3); auto (default): "
        "onnxruntime when importable.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where detection and embedding run. auto (default): a CUDA GPU when "
        "onnxruntime-gpu, or PyTorch with CUDA plus onnx2torch, is installed and finds one, "
        "else the CPU; cpu: always the CPU (the backends above); cuda: a GPU or an error "
        "saying what to install. See docs/gpu.md.",
    )


class GallerySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_enroll_quality: float = Field(
        0.4, ge=0, le=1, description="Refuse enrollment photos whose face quality is below this."
    )
    top_k: int = Field(5, ge=1, le=100, description="Candidates returned by identify.")
    approximate_above: int = Field(
        250_000,
        ge=1,
        description="Above this many templates of one model in a collection, scan a compressed "
        "copy and re-score the best exactly instead of scoring every template "
        "(measured: docs/scaling.md).",
    )


class ServiceSettings(BaseModel):
    """The HTTP service (``facegate serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="Interface to listen on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Refuse request bodies larger than this (counted while streaming).",
    )
    max_images: int = Field(10, ge=1, le=100, description="Most images in one request.")
    workers: int = Field(
        2, ge=1, le=64, description="Inference threads: requests beyond this wait their turn."
    )
    max_queue: int = Field(
        64,
        ge=0,
        le=10_000,
        description="Requests that may wait for an inference thread; more get 503 + Retry-After.",
    )
    rate_limit: float = Field(
        10.0, ge=0, description="Requests per second per API key (token refill); 0: no limit."
    )
    rate_burst: int = Field(20, ge=1, description="Token-bucket size: requests allowed at once.")
    session_hours: float = Field(
        8, gt=0, le=720, description="Web UI sign-ins last this long, then ask for the key again."
    )


class EncryptionSettings(BaseModel):
    """Templates (and stored images) encrypted at rest with AES-256-GCM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="Encrypt templates at rest. Off only for a throwaway gallery."
    )
    key_file: Path | None = Field(
        None,
        description="The data key file (JSON, mode 0600), created on first start. "
        "Default: <data_dir>/keys/data-keys.json. Keep it out of database backups.",
    )
    keys: SecretStr | None = Field(
        None,
        description="Data keys from the environment instead of a file: 'ID:BASE64[,ID:BASE64...]', "
        "the first one encrypts new records.",
    )


class RetentionSettings(BaseModel):
    """How long what is not a template is kept, and how often the service sweeps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sweep_interval_s: float = Field(
        3600, ge=0, description="Seconds between retention sweeps in the service; 0: never."
    )
    event_days: float = Field(30, gt=0, description="Events older than this are deleted.")
    snapshot_days: float = Field(
        7, gt=0, description="Event snapshots older than this are deleted (the event stays)."
    )


class WebhookSettings(BaseModel):
    """One webhook receiver: each event is POSTed as JSON, signed with HMAC-SHA256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(..., pattern=r"^https?://", description="The receiver's http(s) URL.")
    secret: SecretStr = Field(
        ..., min_length=16, description="Shared secret for the X-Facegate-Signature header."
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Per-attempt timeout.")
    max_attempts: int = Field(5, ge=1, le=20, description="Attempts before a dead letter.")
    backoff_s: float = Field(
        1.0, gt=0, le=600, description="First retry delay; doubles after each failed attempt."
    )
    max_backoff_s: float = Field(60.0, gt=0, le=3600, description="Longest retry delay.")
    queue_size: int = Field(1000, ge=1, description="Events waiting; more are dropped, counted.")


class MqttSettings(BaseModel):
    """An MQTT broker: events go to ``<prefix>/cameras/<camera>/events`` and, when a
    subject is named, ``<prefix>/subjects/<subject id>/events``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(..., min_length=1, description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic_prefix: str = Field(
        "facegate", pattern=r"^[^#+]+$", description="First topic level(s), no wildcards."
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service.")
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(None, description="Broker password.")
    tls: bool = Field(False, description="Connect with TLS (system CA store).")
    queue_size: int = Field(1000, ge=1, description="Events waiting; more are dropped, counted.")


class EventSettings(BaseModel):
    """Where camera events go besides the database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: bool = Field(True, description="Store events in the database (GET /v1/events).")
    snapshots: bool = Field(
        False,
        description="Store a JPEG of each decided track's best shot with its event (sealed, "
        "deleted after retention.snapshot_days). Never sent to webhooks or MQTT.",
    )
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    mqtt: MqttSettings | None = None


class TrackingSettings(BaseModel):
    """How a face track is followed across frames and decided."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_hits: int = Field(
        3, ge=1, description="Frames a face must be seen in before its track starts."
    )
    max_missed: int = Field(
        8, ge=0, description="Frames a track survives without its face before it ends."
    )
    iou_threshold: float = Field(
        0.3, gt=0, lt=1, description="Least overlap of a face with a track's predicted box."
    )
    high_score: float = Field(
        0.8, gt=0, le=1, description="Detections at least this confident may start tracks."
    )
    shots: int = Field(
        3, ge=1, le=20, description="Best shots (by quality) embedded for each decision."
    )
    min_agreement: int = Field(
        2, ge=1, le=20, description="Shots that must name the same person to identify them."
    )
    min_span_s: float = Field(
        0.3,
        ge=0,
        le=60,
        description="Agreeing shots must be at least this many seconds apart: consecutive "
        "frames are nearly the same picture, not independent evidence.",
    )
    max_shots: int = Field(
        9, ge=1, le=50, description="Most shots embedded per track before it is called unknown."
    )
    stranger_fmr: float = Field(
        1e-2,
        ge=0,
        description="After a track's first window of shots, call it unknown when none of "
        "them reaches the threshold at this false-match rate (1e-2, 1e-3 or 1e-4; calibrated "
        "per model): a stranger, whose further shots need not be embedded. On LFW a genuine "
        "pair scores below the 1e-2 threshold 0.6 % of the time. 0: off (embed up to "
        "max_shots).",
    )
    min_shot_quality: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Faces whose size, sharpness or exposure factor is below this are never "
        "used as shots (as for photos; pose is not gated: a turned face lowers scores, it "
        "does not cause false matches).",
    )
    cut_threshold: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Colour-histogram distance between analysed frames taken as a scene cut, "
        "which ends every track (docs/streams.md).",
    )


def _check_tracking(settings: TrackingSettings) -> TrackingSettings:
    fmr = settings.stranger_fmr
    if fmr != 0 and not any(abs(fmr - c) <= c * 1e-6 for c in FMR_CHOICES):
        choices = ", ".join(f"{c:g}" for c in FMR_CHOICES)
        raise ValueError(
            f"stranger_fmr {fmr:g} is not calibrated; choose one of {choices}, or 0 (off)"
        )
    if settings.min_agreement > settings.max_shots:
        raise ValueError(
            f"min_agreement ({settings.min_agreement}) cannot exceed max_shots "
            f"({settings.max_shots}): no track could ever be identified"
        )
    return settings


class CameraSettings(BaseModel):
    """One camera that ``facegate serve`` runs as a worker process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Camera id.")
    source: str = Field(
        ...,
        min_length=1,
        description="rtsp://..., a video file path, or a webcam index such as '0'.",
    )
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport.")
    collection: str = Field("default", description="The collection to identify against.")
    target_fps: float = Field(
        15.0, gt=0, le=120, description="Frames analysed per second; others are skipped."
    )
    detection_size: int = Field(
        640, ge=64, le=4096, description="Frames are downscaled to this longer side to detect."
    )
    min_face_size: int = Field(
        20, ge=1, description="Faces narrower than this (frame pixels) are ignored."
    )
    roi: tuple[float, float, float, float] | None = Field(
        None,
        description="Region of interest as fractions of the frame (x1, y1, x2, y2): faces "
        "whose centre lies outside are ignored.",
    )
    realtime: bool = Field(
        True,
        description="For files: read at the clip's own pace (dropping frames that cannot be "
        "analysed in time), as a live camera would; False reads every frame.",
    )


class StreamSettings(BaseModel):
    """Camera workers (``facegate watch`` and the cameras of ``facegate serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_frames: int = Field(
        8,
        ge=1,
        le=100,
        description="Frames waiting for analysis; when full, the oldest is dropped. Absorbs the "
        "burst a stream delivers on connecting; bounds the delay when analysis falls behind.",
    )
    reconnect_min_s: float = Field(0.5, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest reconnect delay.")
    open_timeout_s: float = Field(10.0, gt=0, description="Give up opening a stream after this.")
    restart_max_s: float = Field(
        60.0, gt=0, description="Longest wait before a crashed camera worker is restarted."
    )
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)

    @field_validator("tracking")
    @classmethod
    def _tracking_consistent(cls, tracking: TrackingSettings) -> TrackingSettings:
        return _check_tracking(tracking)


class Settings(BaseSettings):
    """facegate settings. Environment: ``FACEGATE_MODEL``, ``FACEGATE_VISION__MAX_PIXELS``, ..."""

    model_config = SettingsConfigDict(
        env_prefix="FACEGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the gallery lives.")
    database_url: SecretStr | None = Field(
        None,
        description="postgresql://user:password@host:port/db to use PostgreSQL + pgvector "
        "instead of the embedded SQLite file (several API replicas can share it).",
    )
    database_search: bool = Field(
        False,
        description="With PostgreSQL: True searches with pgvector in the database (a "
        "plaintext vector column beside the encrypted template; measured less accurate and "
        "slower at 1M, docs/scaling.md). False (default): only ciphertext in the database, "
        "each replica searches decrypted templates in memory.",
    )
    model: Literal["sface", "dlib", "fused"] | str = Field(
        "sface", description="Model id: sface (default), dlib, fused, or a registered custom model."
    )
    fmr: float = Field(1e-3, description="Target false-match rate; picks the calibrated threshold.")
    vision: VisionSettings = Field(default_factory=VisionSettings)
    gallery: GallerySettings = Field(default_factory=GallerySettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    cameras: list[CameraSettings] = Field(
        default_factory=list, description="Cameras run by facegate serve ([[cameras]] in TOML)."
    )

    @field_validator("cameras")
    @classmethod
    def _unique_camera_names(cls, cameras: list[CameraSettings]) -> list[CameraSettings]:
        names = [c.name for c in cameras]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(repeated)}")
        return cameras

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_environment(settings_cls)
        named = os.environ.get("FACEGATE_CONFIG")
        if named is not None and not Path(named).is_file():
            raise ValueError(f"FACEGATE_CONFIG names {named!r}, which is not a file")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=named or "facegate.toml")
        return (init_settings, env_settings, toml)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gallery.sqlite3"

    @property
    def camera_status_dir(self) -> Path:
        """Where camera workers write their status for GET /v1/cameras."""
        return self.data_dir / "cameras"

    @property
    def data_key_path(self) -> Path:
        return self.encryption.key_file or self.data_dir / "keys" / "data-keys.json"
