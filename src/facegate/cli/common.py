"""Options shared by the gallery commands, and how they become Settings."""

from __future__ import annotations

import getpass
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from facegate.config import Settings
from facegate.errors import ConfigError, InvalidConsentError
from facegate.gallery.records import LEGAL_BASES, ConsentGrant
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

ConsentOption = Annotated[
    str | None,
    typer.Option(
        "--consent",
        help="The legal basis of the person's consent: explicit_consent (GDPR Art. 9(2)(a)), "
        "written_release (BIPA) or employment. Required to enroll a new person.",
        show_default=False,
    ),
]
NoticeOption = Annotated[
    str | None,
    typer.Option(
        "--notice-version",
        help="The version of the privacy notice the person was shown (with --consent).",
        show_default=False,
    ),
]
ConsentExpiresOption = Annotated[
    datetime | None,
    typer.Option(
        "--consent-expires",
        help="When the consent lapses (UTC); the data is then erased. Default: never.",
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        show_default=False,
    ),
]


def cli_actor() -> str:
    """Who acts from the command line, for consent and audit records."""
    return f"cli:{getpass.getuser()}"


def consent_grant(
    basis: str | None, notice_version: str | None, expires: datetime | None
) -> ConsentGrant | None:
    """The consent given on the command line (None if none), collected by this OS user."""
    if basis is None and notice_version is None:
        if expires is not None:
            raise InvalidConsentError("--consent-expires needs --consent and --notice-version")
        return None
    if basis is None or notice_version is None:
        raise InvalidConsentError("a consent needs both --consent and --notice-version")
    if basis not in LEGAL_BASES:
        raise InvalidConsentError(f"--consent must be one of {', '.join(LEGAL_BASES)}")
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return ConsentGrant(basis, notice_version, cli_actor(), None, expires)


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
