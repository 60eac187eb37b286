"""``facegate serve`` (the HTTP service) and ``facegate keys`` (its API keys)."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facegate.cli.common import DataDirOption, JsonOption, build_settings
from facegate.cli.output import console, err_console, print_json
from facegate.config import Settings
from facegate.gallery.audit import AuditLog
from facegate.gallery.keys import SCOPES, ApiKey, KeyStore
from facegate.gallery.opening import open_store
from facegate.gallery.rotation import rotate_data_key
from facegate.service.keyadmin import create_key, revoke_key
from facegate.stream.supervisor import CameraSupervisor

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service.")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.add_typer(keys_app, name="keys")


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Interface [default: 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port [default: 8000].")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Run the HTTP service (REST API v1) and the configured cameras until interrupted."""
    import uvicorn

    from facegate.web.site import create_site

    settings = build_settings(data_dir, None, None)
    changes = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if changes:
        settings = settings.model_copy(
            update={"service": settings.service.model_copy(update=changes)}
        )
    app = create_site(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.service.host,
            port=settings.service.port,
            log_level="info",
            server_header=False,
            # Open live event streams must not hold Ctrl+C (and the cameras) for an hour.
            timeout_graceful_shutdown=5,
        )
    )
    threading.Thread(target=_announce, args=(server, settings, app), daemon=True).start()
    cameras = CameraSupervisor(settings).start()  # each configured camera in its own process
    try:
        server.run()
    finally:
        cameras.stop()


def _announce(server: object, settings: Settings, app: object) -> None:
    """Once the server listens: print the URL and, on first start, the admin key."""
    while not getattr(server, "started", False):
        if getattr(server, "should_exit", False):
            return
        time.sleep(0.05)
    s = settings.service
    host = f"[{s.host}]" if ":" in s.host else s.host
    console.print(f"facegate is serving http://{host}:{s.port} (web UI at /ui/, API docs at /docs)")
    state = getattr(app, "state", None)
    service_state = getattr(state, "facegate", None)
    secret = getattr(service_state, "bootstrap_secret", None)
    if secret:
        path = service_state.bootstrap_key_path  # type: ignore[union-attr]
        console.print(
            "[bold yellow]first start:[/] bootstrap admin key (shown once, also written to "
            f"{escape(str(path))}; store it and delete that file):"
        )
        console.print(secret, markup=False, highlight=False, soft_wrap=True)


# --- keys ----------------------------------------------------------------------------------
def _key_stores(data_dir: DataDirOption) -> tuple[KeyStore, AuditLog]:
    store = open_store(build_settings(data_dir, None, None))
    return KeyStore(store.engine), AuditLog(store.engine)


def _key_view(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": sorted(key.scopes),
        "collections": None if key.collections is None else sorted(key.collections),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "active": key.active,
    }


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. 'door camera'.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"Repeatable: {', '.join(SCOPES)}.", show_default=False),
    ],
    collection: Annotated[
        list[str] | None,
        typer.Option(
            "--collection",
            help="Repeatable: limit the key to these collections.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create an API key. Its secret is printed once and never stored."""
    keys, audit = _key_stores(data_dir)
    try:
        key, secret = create_key(keys, audit, name, scope, collection or None, by=None, via="cli")
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if json_output:
        print_json({**_key_view(key), "secret": secret})
        return
    console.print(f"created key {key.id} ({', '.join(sorted(key.scopes))}); secret, shown once:")
    console.print(secret, markup=False, highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """List API keys (never their secrets)."""
    keys, _ = _key_stores(data_dir)
    views = [_key_view(k) for k in keys.list()]
    if json_output:
        print_json({"keys": views})
        return
    table = Table(title=f"{len(views)} key(s)")
    table.add_column("id", no_wrap=True)
    for column in ("name", "scopes", "collections", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for v in views:
        collections = v["collections"]
        table.add_row(
            str(v["id"]),
            escape(str(v["name"])),
            ", ".join(v["scopes"]),  # type: ignore[arg-type]
            "all" if collections is None else ", ".join(collections),  # type: ignore[arg-type]
            str(v["created_at"]),
            str(v["revoked_at"] or ""),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (not its secret).")],
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke an API key: a running service refuses it from the next request."""
    keys, audit = _key_stores(data_dir)
    key = revoke_key(keys, audit, key_id, by=None, via="cli")  # unknown id: exit 5
    if json_output:
        print_json(_key_view(key))
    else:
        console.print(f"revoked key {key.id} ({escape(key.name)})")


@keys_app.command("rotate-data-key")
def keys_rotate_data_key(
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Records per transaction.")
    ] = 200,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make a new data key and re-encrypt every template, image and snapshot with it; old
    keys are then retired from the key file. Resumable: after a crash, run it again."""
    settings = build_settings(data_dir, None, None)
    store = open_store(settings)
    try:
        with Progress(
            TextColumn("re-encrypting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=json_output,
        ) as bar:
            task = bar.add_task("re-encrypting", total=None)
            rotation = rotate_data_key(
                store,
                batch_size=batch_size,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        AuditLog(store.engine).append(
            "data_key.rotate",
            "ok",
            detail={
                "key": rotation.key_id,
                "resumed": rotation.resumed,
                "resealed": rotation.resealed,
                "retired": list(rotation.retired),
                "via": "cli",
            },
        )
    finally:
        store.close()
    view = {
        "key_id": rotation.key_id,
        "resumed": rotation.resumed,
        "resealed": rotation.resealed,
        "retired": list(rotation.retired),
        "key_file": str(settings.data_key_path),
    }
    if json_output:
        print_json(view)
        return
    verb = "finished the interrupted rotation to" if rotation.resumed else "rotated to"
    console.print(
        f"{verb} data key {rotation.key_id}: {rotation.resealed} record(s) re-encrypted, "
        f"retired {', '.join(rotation.retired) or 'no key'}"
    )
