"""``facegate`` command: entry point, global options and error-to-exit-code mapping."""

from __future__ import annotations

import logging
import sys

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from facegate.cli import (
    audit_cmds,
    bench_cmds,
    collection_cmds,
    eval_cmds,
    gallery_cmds,
    policy_cmds,
    privacy_cmds,
    service_cmds,
    stream_cmds,
    subject_cmds,
)
from facegate.cli.output import err_console, print_json
from facegate.errors import (
    ConfigError,
    FaceError,
    FacegateError,
    GalleryError,
    ImageError,
    ModelError,
)

app = typer.Typer(
    name="facegate",
    help="Self-hosted, privacy-first face recognition for consented uses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
gallery_cmds.register(app)
app.add_typer(subject_cmds.subjects_app, name="subjects")
app.add_typer(privacy_cmds.retention_app, name="retention")
app.add_typer(collection_cmds.app, name="collections")
app.add_typer(audit_cmds.app, name="audit")
app.add_typer(policy_cmds.app, name="policy")
app.add_typer(eval_cmds.app, name="eval", help="Measure accuracy on a labelled photo set.")
app.add_typer(bench_cmds.app, name="bench", help="Measure speed, against a peer in the same run.")
service_cmds.register(app)
stream_cmds.register(app)

# Exit codes: 0 ok, 1 a negative answer (no match), 2 usage (typer), 3 bad image input,
# 4 face problem (none, several, low quality), 5 gallery problem, 6 model/config problem,
# 7 input/output problem (unreadable file, unwritable data directory).
EXIT_CODES: tuple[tuple[type[FacegateError], int], ...] = (
    (ImageError, 3),
    (FaceError, 4),
    (GalleryError, 5),
    (ModelError, 6),
    (ConfigError, 6),
)


def exit_code_for(error: FacegateError) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 1


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except FacegateError as error:
        if "--json" in sys.argv:
            print_json({"error": error.code, "message": str(error)})
        else:
            err_console.print(f"[bold red]error[/] ({error.code}): {escape(str(error))}")
        sys.exit(exit_code_for(error))
    except OSError as error:  # unreadable files, an unwritable data directory, a full disk
        _fail("io_error", str(error))
    except SQLAlchemyError as error:  # a corrupt or locked gallery database
        _fail(
            "storage_error",
            f"the gallery database cannot be used: {error.__class__.__name__}: "
            f"{getattr(error, 'orig', error)}",
        )


def _fail(code: str, message: str) -> None:
    if "--json" in sys.argv:
        print_json({"error": code, "message": message})
    else:
        err_console.print(f"[bold red]error[/] ({code}): {escape(message)}")
    sys.exit(7)
