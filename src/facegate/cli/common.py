"""Options shared by the gallery commands, and how they become Settings."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from facegate.config import Settings
from facegate.errors import ConfigError
from facegate.recognition import FaceChoice

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the gallery lives [env: FACEGATE_DATA_DIR].", show_default=False
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", help="sface (default), dlib or fused [env: FACEGATE_MODEL].", show_default=False
    ),
]
FmrOption = Annotated[
    float | None,
    typer.Option(
        "--fmr",
        help="False-match rate: 1e-2, 1e-3 (default) or 1e-4 [env: FACEGATE_FMR].",
        show_default=False,
    ),
]
CollectionOption = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        help="The gallery namespace (a site or tenant); created on first enroll.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FaceOption = Annotated[
    str | None,
    typer.Option(
        "--face",
        help="Which face when a photo has several: 'largest' or an index (0 = largest).",
        show_default=False,
    ),
]


def build_settings(data_dir: Path | None, model: str | None, fmr: float | None) -> Settings:
    given = {"data_dir": data_dir, "model": model, "fmr": fmr}
    return load_settings(**{name: value for name, value in given.items() if value is not None})


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and facegate.toml; a bad value is a ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"invalid settings ({problems})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"the settings file is not valid TOML: {error}") from None
    except ValueError as error:  # an unknown FACEGATE_* variable, a missing config file
        raise ConfigError(str(error)) from None


def parse_face_choice(value: str | None) -> FaceChoice:
    if value is None:
        return None
    if value == "largest":
        return "largest"
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"expected 'largest' or a face index, got {value!r}") from None
