"""``facegate policy apply|show``: access rules and quotas from one declarative file.

The file (TOML or JSON) may hold the access sections (doors, groups, schedules, rules;
docs/access.md) and ``quotas`` (docs/quotas.md). Everything is checked before anything is
written, then each part replaces the stored one (its version goes up) and the change is
audited. A running service and its cameras pick the new documents up at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facegate.cli.common import DataDirOption, JsonOption, build_settings, cli_actor
from facegate.cli.output import console, print_json
from facegate.errors import PolicyError
from facegate.gallery.applications import ApplicationStore
from facegate.gallery.audit import AuditLog
from facegate.gallery.opening import open_store
from facegate.policy.access_document import SECTIONS, parse_access_policy, read_policy_file
from facegate.policy.quota import (
    QUOTAS_DOCUMENT,
    check_cameras,
    check_collections,
    parse_quotas,
)

app = typer.Typer(no_args_is_help=True, help="Access rules and quotas (declarative files).")
ACCESS_DOCUMENT = "access"


def split_policy_file(data: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any] | None]:
    """The access part and the quota list of a policy file (None: absent)."""
    unknown = sorted(set(data) - set(SECTIONS) - {QUOTAS_DOCUMENT})
    if unknown:
        expected = ", ".join([*SECTIONS, QUOTAS_DOCUMENT])
        raise PolicyError(f"unknown section(s) {', '.join(unknown)}; expected {expected}")
    access = {k: v for k, v in data.items() if k in SECTIONS}
    quotas = data.get(QUOTAS_DOCUMENT)
    return (access or None), quotas


@app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="A .toml or .json policy file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file; write nothing.")
    ] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check a policy file and make it the stored access policy and/or quota set."""
    settings = build_settings(data_dir, None, None)
    data = read_policy_file(file)
    access, quotas = split_policy_file(data)
    if access is None and quotas is None:
        raise PolicyError(f"{file} holds neither access sections nor quotas")
    store = open_store(settings)
    try:
        collections = {c.name for c in store.list_collections()}
        cameras = {c.name: c.collection for c in settings.cameras}
        if access is not None:  # every problem of the file at once, all before writing
            parse_access_policy(access, cameras=cameras, collections=collections)
        if quotas is not None:
            quota_set = parse_quotas(quotas)
            check_collections(quota_set, store.list_collections())
            check_cameras(quota_set, cameras)
        written: dict[str, int] = {}
        if not dry_run:
            applications = ApplicationStore(store.engine)
            audit = AuditLog(store.engine)
            parts = {ACCESS_DOCUMENT: access, QUOTAS_DOCUMENT: None}
            if quotas is not None:
                parts[QUOTAS_DOCUMENT] = {QUOTAS_DOCUMENT: quotas}
            for name, document in parts.items():
                if document is None:
                    continue
                stored = applications.put_document(name, document, cli_actor())
                written[name] = stored.version
                audit.append(
                    f"policy.{name}",
                    "ok",
                    detail={"via": cli_actor(), "version": stored.version, "file": file.name},
                )
    finally:
        store.close()
    answer = {"file": str(file), "dry_run": dry_run, "valid": True, "written": written}
    if json_output:
        print_json(answer)
    elif dry_run:
        console.print(f"{file}: valid (nothing written)")
    else:
        versions = ", ".join(f"{name} v{version}" for name, version in written.items())
        console.print(f"{file}: applied ({versions})")


@app.command("show")
def show(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """The stored access policy and quota set, with their versions."""
    settings = build_settings(data_dir, None, None)
    store = open_store(settings)
    try:
        applications = ApplicationStore(store.engine)
        found = {
            name: applications.get_document(name) for name in (ACCESS_DOCUMENT, QUOTAS_DOCUMENT)
        }
    finally:
        store.close()
    answer = {
        name: None
        if doc is None
        else {
            "version": doc.version,
            "updated_at": doc.updated_at.isoformat(),
            "updated_by": doc.updated_by,
            "document": doc.document,
        }
        for name, doc in found.items()
    }
    if json_output:
        print_json(answer)
        return
    for name, entry in answer.items():
        if entry is None:
            console.print(f"{name}: none stored")
        else:
            when, who = entry["updated_at"], entry["updated_by"]
            console.print(f"{name}: version {entry['version']}, {when} by {who}")
