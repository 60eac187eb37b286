"""``facegate audit``: read, export and verify the hash-chained audit trail."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DataDirOption, JsonOption, build_settings
from facegate.cli.output import console, print_json
from facegate.gallery.audit import AuditLog
from facegate.gallery.opening import open_store

app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")


def _log(data_dir: DataDirOption) -> AuditLog:
    return AuditLog(open_store(build_settings(data_dir, None, None)).engine)


@app.command("list")
def list_entries(
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. identify.")] = None,
    collection: Annotated[str | None, typer.Option(help="Only this collection.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """The newest entries first."""
    entries = _log(data_dir).query(action=action, collection=collection, limit=limit)
    if json_output:
        print_json({"entries": [e.as_dict() for e in entries]})
        return
    table = Table("#", "when", "key", "collection", "action", "outcome", "subjects")
    for e in entries:
        table.add_row(
            str(e.seq),
            e.at.isoformat(timespec="seconds"),
            e.key_id or "-",
            e.collection or "-",
            e.action,
            e.outcome,
            ", ".join(e.subject_ids),
        )
    console.print(table)


@app.command("export")
def export(data_dir: DataDirOption = None) -> None:
    """Every entry, oldest first, as JSON lines on stdout (hashes included, to re-verify)."""
    log = _log(data_dir)
    offset = 0
    page: list[dict[str, object]] = []
    while True:
        batch = log.query(limit=1000, offset=offset)
        if not batch:
            break
        page.extend(e.as_dict() for e in batch)
        offset += len(batch)
    for entry in reversed(page):  # query gives newest first
        sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")


@app.command("verify")
def verify(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Check the hash chain. Exit code 0 when intact, 1 with the first broken entry."""
    broken = _log(data_dir).verify()
    if json_output:
        print_json({"intact": broken is None, "first_broken_seq": broken})
    elif broken is None:
        console.print("[green]audit trail intact[/]")
    else:
        console.print(
            f"[red]audit trail broken[/] at entry #{broken} (edited, removed or reordered)"
        )
    raise typer.Exit(0 if broken is None else 1)
