"""``facegate watch``: run one camera in the foreground and print its events live."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from facegate.cli.common import CollectionOption, DataDirOption, build_settings
from facegate.cli.output import console, err_console
from facegate.config import CameraSettings
from facegate.errors import ConfigError, VideoSourceError
from facegate.events.camera_status import CameraStatus
from facegate.events.model import EventKind, SinkStats, StreamEvent
from facegate.stream.capture import SourceKind, source_kind
from facegate.stream.runner import CameraRun

_COLOURS = {
    EventKind.TRACK_STARTED: "cyan",
    EventKind.IDENTIFIED: "bold green",
    EventKind.UNKNOWN: "yellow",
    EventKind.TRACK_ENDED: "dim",
    EventKind.ACCESS: "magenta",
    EventKind.QUOTA: "blue",
}


class PrintSink:
    """Events to the terminal: a line each, or JSON lines with ``--json``."""

    name = "terminal"

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.count = 0
        self.broken = threading.Event()  # the reader went away (e.g. piped into head)
        self._lock = threading.Lock()

    def publish(self, event: StreamEvent) -> None:
        with self._lock:
            self.count += 1
            if self.broken.is_set():
                return
            if self.as_json:
                try:
                    sys.stdout.write(json.dumps(event.payload()) + "\n")
                    sys.stdout.flush()
                except BrokenPipeError:
                    self.broken.set()
                return
            who = ""
            if event.kind is EventKind.IDENTIFIED:
                who = f" {escape(event.subject_name or event.subject_id or '')}"
            if event.similarity is not None and event.kind in (
                EventKind.IDENTIFIED,
                EventKind.UNKNOWN,
            ):
                who += f" similarity {event.similarity:.3f} ({event.shots} shots)"
            if event.kind is EventKind.UNKNOWN and event.reason:
                who += f": {escape(event.reason)}"
            if event.door is not None or event.quota is not None:
                at = f"door {event.door}" if event.door is not None else f"quota {event.quota}"
                who += f" {escape(at)}: {escape(event.reason or '')}"
                if event.retry_after_s is not None:
                    who += f" (retry after {event.retry_after_s:.0f} s)"
            colour = _COLOURS.get(event.kind, "white")
            line = f"{event.stream_time:8.2f}s track {event.track_id:<4} [{colour}]{event.kind}[/]"
            console.print(line + who, soft_wrap=True)

    def stats(self) -> SinkStats:
        return SinkStats(self.name, delivered=self.count)

    def close(self, timeout: float = 5.0) -> None:
        """Nothing is buffered."""


def status_line(status: CameraStatus) -> Text:
    decided = status.events
    parts = [
        status.state,
        f"{status.fps:.1f} fps",
        f"{status.analysed} analysed",
        f"{status.skipped} skipped",
        f"{status.dropped} dropped",
        f"{status.active_tracks} tracks",
        f"{decided.get('identified', 0)} identified",
        f"{decided.get('unknown', 0)} unknown",
    ]
    if status.reconnects:
        parts.append(f"{status.reconnects} reconnects")
    return Text(" · ".join(parts), style="dim")


def watch(
    source: Annotated[
        str, typer.Argument(help="rtsp://..., a video file, or a webcam index such as 0.")
    ],
    collection: CollectionOption = "default",
    fps: Annotated[
        float | None, typer.Option("--fps", help="Frames analysed per second [default: 15].")
    ] = None,
    detection_size: Annotated[
        int | None,
        typer.Option("--detection-size", help="Longer side frames are detected at [640]."),
    ] = None,
    min_face_size: Annotated[
        int | None, typer.Option("--min-face-size", help="Ignore narrower faces [20 px].")
    ] = None,
    transport: Annotated[
        str, typer.Option("--transport", help="RTSP transport: tcp or udp.")
    ] = "tcp",
    realtime: Annotated[
        bool,
        typer.Option(
            "--realtime/--every-frame",
            help="Files: read at the clip's pace and drop what cannot be analysed in time, "
            "like a live camera, or analyse at the target rate without dropping (default).",
        ),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Camera name in events.")] = "watch",
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Also store events in the database [record]."),
    ] = True,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print events as JSON lines (no status line).")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Identify the people in a video stream: one decision per face track, printed live.

    Events also go to the database and to the webhooks and MQTT broker configured
    (FACEGATE_EVENTS__*). Ctrl+C stops.
    """
    settings = build_settings(data_dir, None, None)
    if source_kind(source) is SourceKind.FILE and not Path(source).is_file():
        raise VideoSourceError(f"no such video file: {source}")
    options = {
        "name": name,
        "source": source,
        "collection": collection,
        "transport": transport,
        "realtime": realtime,
        "target_fps": fps,
        "detection_size": detection_size,
        "min_face_size": min_face_size,
    }
    try:
        camera = CameraSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"invalid camera options: {problems}") from None
    events = settings.events.model_copy(update={"record": record and settings.events.record})
    settings = settings.model_copy(update={"events": events})
    printer = PrintSink(json_output)
    run = CameraRun(settings, camera, extra_sinks=[printer]).start()
    # The status line stays under the events on a terminal (both on stdout, one console).
    live = None if json_output or not console.is_terminal else Live(console=console, transient=True)
    try:
        if live is not None:
            live.start()
        while not run.wait(0.5):
            if printer.broken.is_set():
                break
            if live is not None:
                live.update(status_line(run.status()))
    except KeyboardInterrupt:
        err_console.print("stopping...")
    finally:
        run.close()
        if live is not None:
            live.stop()
    final = run.status()
    if not json_output:
        err_console.print(status_line(final), soft_wrap=True)
    if run.error is not None:
        raise run.error
    if final.state == "failed":
        raise VideoSourceError(f"cannot read {final.source}: {final.last_error}")


def register(app: typer.Typer) -> None:
    app.command()(watch)
