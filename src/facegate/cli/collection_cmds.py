"""``facegate collections``: gallery namespaces, each pinned to one model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DataDirOption, JsonOption, build_settings
from facegate.cli.output import console, print_json
from facegate.gallery.records import Collection
from facegate.gallery.sqlite_store import SQLiteStore
from facegate.policy.thresholds import operating_point

app = typer.Typer(no_args_is_help=True, help="Gallery namespaces, each pinned to one model.")


def _store(data_dir: DataDirOption) -> SQLiteStore:
    return SQLiteStore(build_settings(data_dir, None, None).db_path)


def _view(collection: Collection, subjects: int) -> dict[str, object]:
    return {
        "name": collection.name,
        "model_id": collection.model_id,
        "fmr": collection.fmr,
        "subjects": subjects,
        "created_at": collection.created_at.isoformat(),
    }


@app.command("list")
def list_collections(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List collections with their model, operating point and size."""
    store = _store(data_dir)
    views = [_view(c, store.count_subjects(c.name)) for c in store.list_collections()]
    if json_output:
        print_json({"collections": views})
        return
    table = Table(
        "name", "model", "FMR", "subjects", "created", title=f"{len(views)} collection(s)"
    )
    for v in views:
        table.add_row(
            str(v["name"]),
            str(v["model_id"]),
            f"{v['fmr']:g}",
            str(v["subjects"]),
            str(v["created_at"]),
        )
    console.print(table)


@app.command("create")
def create_collection(
    name: Annotated[str, typer.Argument(help="a-z, 0-9, '_' and '-', at most 64 characters.")],
    model: Annotated[str, typer.Option("--model", help="sface, dlib or fused.")] = "sface",
    fmr: Annotated[float, typer.Option("--fmr", help="Default false-match rate.")] = 1e-3,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a collection pinned to a model, with a default operating point."""
    operating_point(model, fmr)  # refuse an uncalibrated model or rate before writing
    try:
        collection = Collection(name=name, model_id=model, fmr=fmr)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    _store(data_dir).add_collection(collection)
    if json_output:
        print_json(_view(collection, 0))
    else:
        console.print(f"created collection {name} ({model}, FMR {fmr:g})")


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
