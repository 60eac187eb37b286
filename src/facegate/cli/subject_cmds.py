"""``facegate subjects``: list, show, erase and export subjects; record and withdraw consent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import (
    CollectionOption,
    ConsentExpiresOption,
    ConsentOption,
    DataDirOption,
    JsonOption,
    NoticeOption,
    cli_actor,
    consent_grant,
)
from facegate.cli.gallery_cmds import open_recognizer
from facegate.cli.output import console, err_console, print_json
from facegate.cli.render import subject_view
from facegate.errors import InvalidConsentError
from facegate.gallery.audit import AuditLog
from facegate.gallery.export import subject_export
from facegate.gallery.records import DEFAULT_COLLECTION, Erasure
from facegate.recognition import FaceRecognizer


def audit_of(recognizer: FaceRecognizer) -> AuditLog:
    assert recognizer.durable is not None  # open_recognizer opens the durable store
    return AuditLog(recognizer.durable.engine)


def record(recognizer: FaceRecognizer, action: str, subject_id: str, **detail: object) -> None:
    """One audit entry for an action taken from the command line."""
    audit_of(recognizer).append(
        action,
        "ok",
        collection=recognizer.gallery.collection_id,
        subject_ids=[subject_id],
        detail={"via": cli_actor(), **detail},
    )


subjects_app = typer.Typer(
    no_args_is_help=True, help="Enrolled subjects: list, show, consent, erase, export."
)


@subjects_app.command("list")
def subjects_list(
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,
) -> None:
    """List enrolled subjects."""
    recognizer = open_recognizer(data_dir, collection)
    gallery = recognizer.gallery
    subjects = gallery.list_subjects(limit, offset)
    total = gallery.count_subjects()
    if json_output:
        print_json(
            {
                "collection": gallery.collection_id,
                "total": total,
                "subjects": [subject_view(s) for s in subjects],
            }
        )
        return
    table = Table(
        "id",
        "name",
        "external id",
        "templates",
        title=f"{total} subject(s) in collection {gallery.collection_id}",
    )
    for s in subjects:
        table.add_row(
            s.id, s.display_name, s.external_id or "", str(len(gallery.subject_templates(s.id)))
        )
    console.print(table)


@subjects_app.command("show")
def subjects_show(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,
) -> None:
    """Show one subject and its templates (never the embeddings)."""
    recognizer = open_recognizer(data_dir, collection)
    found = recognizer.gallery.resolve(subject)
    view = subject_view(found, recognizer.gallery.subject_templates(found.id))
    if json_output:
        print_json(view)
        return
    console.print(
        f"[bold]{found.display_name}[/] ({found.id}) external id: {found.external_id or '-'}"
    )
    table = Table("template", "model", "quality", "source", "created")
    for t in view["templates"]:
        table.add_row(
            t["id"], t["model_id"], f"{t['quality']:.2f}", t["source"] or "", t["created_at"]
        )
    console.print(table)


@subjects_app.command("erase")
def subjects_erase(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    template: Annotated[
        str | None, typer.Option("--template", help="Erase only this template.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,
) -> None:
    """Erase a subject and everything held about them (templates, stored images, consent
    records, events), or one template. The audit trail records that it happened."""
    recognizer = open_recognizer(data_dir, collection)
    gallery = recognizer.gallery
    found = gallery.resolve(subject)
    what = f"template {template} of {found.display_name}" if template else found.display_name
    if not yes and not typer.confirm(f"erase {what} ({found.id})? This cannot be undone"):
        raise typer.Abort()
    if template is not None:
        owned = {t.id for t in gallery.subject_templates(found.id)}
        if template not in owned:
            raise typer.BadParameter(f"template {template} does not belong to {found.display_name}")
        gallery.remove_template(template)
        erased = Erasure(templates=1)
        action = "template.delete"
    else:
        erased = gallery.erase_subject(found.id)
        action = "subject.erase"
    record(recognizer, action, found.id, **erased.as_dict())
    if json_output:
        print_json({"subject_id": found.id, "subject_erased": template is None, **erased.as_dict()})
    else:
        counts = ", ".join(f"{n} {k}" for k, n in erased.as_dict().items() if n)
        console.print(f"erased {what}: {counts}")


@subjects_app.command("consent")
def subjects_consent(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    consent: ConsentOption = None,
    notice_version: NoticeOption = None,
    consent_expires: ConsentExpiresOption = None,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,
) -> None:
    """Record a (renewed) consent for a subject; without options, list their records."""
    recognizer = open_recognizer(data_dir, collection)
    gallery = recognizer.gallery
    found = gallery.resolve(subject)
    grant = consent_grant(consent, notice_version, consent_expires)
    if grant is not None:
        try:
            given = grant.record(found.id)
        except ValueError as error:
            raise InvalidConsentError(f"invalid consent: {error}") from None
        gallery.add_consent(given)
        record(
            recognizer, "consent.record", found.id, consent=given.id, legal_basis=given.legal_basis
        )
    records = [c.as_dict() for c in gallery.consents(found.id)]
    if json_output:
        print_json({"subject_id": found.id, "consents": records})
        return
    table = Table("id", "basis", "notice", "given", "expires", "by", title=found.display_name)
    for c in records:
        table.add_row(
            c["id"],
            c["legal_basis"],
            c["notice_version"],
            c["given_at"],
            c["expires_at"] or "never",
            c["collected_by"],
        )
    console.print(table)


@subjects_app.command("withdraw-consent")
def subjects_withdraw_consent(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,
) -> None:
    """The subject withdraws consent: their biometric data, and the subject, are erased."""
    recognizer = open_recognizer(data_dir, collection)
    gallery = recognizer.gallery
    found = gallery.resolve(subject)
    if not yes and not typer.confirm(f"erase {found.display_name} ({found.id})?"):
        raise typer.Abort()
    erased = gallery.erase_subject(found.id)
    record(recognizer, "consent.withdraw", found.id, **erased.as_dict())
    if json_output:
        print_json({"subject_id": found.id, **erased.as_dict()})
    else:
        console.print(f"consent withdrawn: {found.display_name} erased")


@subjects_app.command("export")
def subjects_export(
    subject: Annotated[str, typer.Argument(help="Subject id, external id or name.")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here (default: stdout).")
    ] = None,
    data_dir: DataDirOption = None,
    collection: CollectionOption = DEFAULT_COLLECTION,
    json_output: JsonOption = False,  # the export is JSON anyway; this makes errors JSON too
) -> None:
    """Everything held about a subject, as JSON (a subject access request, GDPR Art. 15)."""
    recognizer = open_recognizer(data_dir, collection)
    found = recognizer.gallery.resolve(subject)
    document = subject_export(recognizer.gallery, audit_of(recognizer), found.id)
    record(recognizer, "subject.export", found.id)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if out is None:
        print(text)
        return
    out.write_text(text + "\n")
    err_console.print(f"wrote the export of {found.display_name} to {out}")
