"""``facegate collections``: gallery namespaces, each pinned to one model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DataDirOption, JsonOption, build_settings
from facegate.cli.output import console, print_json
from facegate.gallery.opening import open_store
from facegate.gallery.records import DEFAULT_MAX_IDLE_DAYS, Collection
from facegate.gallery.sql_store import SqlStore
from facegate.policy.thresholds import operating_point

app = typer.Typer(no_args_is_help=True, help="Gallery namespaces, each pinned to one model.")


def _store(data_dir: DataDirOption) -> SqlStore:
    return open_store(build_settings(data_dir, None, None))


def _view(collection: Collection, subjects: int) -> dict[str, object]:
    return {
        "name": collection.name,
        "model_id": collection.model_id,
        "fmr": collection.fmr,
        "subjects": subjects,
        "created_at": collection.created_at.isoformat(),
        "store_images": collection.store_images,
        "ephemeral": collection.ephemeral,
        "ttl_seconds": collection.ttl_seconds,
        "max_template_age_days": collection.max_template_age_days,
        "max_idle_days": collection.max_idle_days,
    }


def _retention_text(c: Collection) -> str:
    if c.ephemeral:
        return f"ephemeral, {c.ttl_seconds:g} s"
    age = f"{c.max_template_age_days:g} d" if c.max_template_age_days else "-"
    idle = f"{c.max_idle_days:g} d" if c.max_idle_days else "-"
    return f"age {age}, idle {idle}" + (", images" if c.store_images else "")


@app.command("list")
def list_collections(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List collections with their model, operating point and size."""
    store = _store(data_dir)
    found = store.list_collections()
    views = [_view(c, store.count_subjects(c.name)) for c in found]
    if json_output:
        print_json({"collections": views})
        return
    table = Table(
        "name",
        "model",
        "FMR",
        "subjects",
        "retention",
        "created",
        title=f"{len(views)} collection(s)",
    )
    for c, v in zip(found, views, strict=True):
        table.add_row(
            c.name,
            c.model_id,
            f"{c.fmr:g}",
            "(in service memory)" if c.ephemeral else str(v["subjects"]),
            _retention_text(c),
            str(v["created_at"]),
        )
    console.print(table)


@app.command("create")
def create_collection(
    name: Annotated[str, typer.Argument(help="a-z, 0-9, '_' and '-', at most 64 characters.")],
    model: Annotated[str, typer.Option("--model", help="sface, dlib or fused.")] = "sface",
    fmr: Annotated[float, typer.Option("--fmr", help="Default false-match rate.")] = 1e-3,
    store_images: Annotated[
        bool,
        typer.Option("--store-images", help="Keep an encrypted face crop with each template."),
    ] = False,
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral", help="Faces only in the service's memory, each for --ttl seconds."
        ),
    ] = False,
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Template lifetime in seconds (ephemeral).")
    ] = None,
    max_template_age_days: Annotated[
        float | None,
        typer.Option("--max-template-age-days", help="Erase templates older than this."),
    ] = None,
    max_idle_days: Annotated[
        float,
        typer.Option(
            "--max-idle-days",
            help="Erase subjects not matched for this long (BIPA: at most 3 years); 0: no limit.",
        ),
    ] = DEFAULT_MAX_IDLE_DAYS,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a collection pinned to a model, with a default operating point and its
    retention limits."""
    operating_point(model, fmr)  # refuse an uncalibrated model or rate before writing
    try:
        collection = Collection(
            name=name,
            model_id=model,
            fmr=fmr,
            store_images=store_images,
            ephemeral=ephemeral,
            ttl_seconds=ttl,
            max_template_age_days=max_template_age_days,
            max_idle_days=max_idle_days or None,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    _store(data_dir).add_collection(collection)
    if json_output:
        print_json(_view(collection, 0))
    else:
        console.print(
            f"created collection {name} ({model}, FMR {fmr:g}; {_retention_text(collection)})"
        )


@app.command("remove")
def remove_collection(
    name: Annotated[str, typer.Argument(help="The collection to delete, with everyone in it.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: this deletes every subject.")
    ] = False,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a collection, its subjects and their templates."""
    if not yes:
        raise typer.BadParameter("this deletes every subject in the collection; add --yes")
    removed = _store(data_dir).remove_collection(name)
    if json_output:
        print_json({"collection": name, "removed_subjects": removed})
    else:
        console.print(f"removed collection {name} and {removed} subject(s)")
