"""One strict settings tree, from ``FACEGATE_*`` environment variables and an optional TOML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
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
    def data_key_path(self) -> Path:
        return self.encryption.key_file or self.data_dir / "keys" / "data-keys.json"
