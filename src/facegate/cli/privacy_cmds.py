"""``facegate retention``: erase what is past its retention time, now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DataDirOption, JsonOption, build_settings
from facegate.cli.output import console, print_json
from facegate.gallery.audit import AuditLog
from facegate.gallery.opening import open_store
from facegate.gallery.records import utc_now
from facegate.gallery.retention import RetentionSweeper

retention_app = typer.Typer(no_args_is_help=True, help="Retention limits and the sweeper.")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be erased.")
    ] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Erase templates, subjects and events past their retention limits (as the service's
    sweeper does on its schedule); every erasure is audited."""
    settings = build_settings(data_dir, None, None)
    store = open_store(settings)
    try:
        sweeper = RetentionSweeper(store, AuditLog(store.engine), settings.retention)
        if dry_run:
            subjects, templates = sweeper.due(utc_now())
            names = sorted(set(subjects) | set(templates))
            if json_output:
                plan = {
                    name: {
                        "subjects": [{"id": s, "reason": r} for s, r in subjects.get(name, [])],
                        "templates": len(templates.get(name, [])),
                    }
                    for name in names
                }
                print_json({"dry_run": True, "collections": plan})
                return
            table = Table("collection", "subjects", "templates", title="would be erased")
            for name in names:
                table.add_row(
                    name, str(len(subjects.get(name, []))), str(len(templates.get(name, [])))
                )
            console.print(table)
            return
        report = sweeper.sweep()
    finally:
        store.close()
    if json_output:
        print_json(report.as_dict())
        return
    erased = report.erasure
    reasons = ", ".join(f"{len(v)} {k}" for k, v in report.erased_subjects.items()) or "none"
    console.print(
        f"erased {erased.subjects} subject(s) ({reasons}), {erased.templates} template(s), "
        f"{report.events_deleted} event(s), {report.snapshots_deleted} snapshot(s)"
    )
