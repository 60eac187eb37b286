"""``facegate bench ...``: speed measurements, against a peer in the same run."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facegate.bench.pipeline import DEFAULT_BLOCK_SIZE, DEFAULT_LIMIT, DEFAULT_WARMUP
from facegate.bench.pipeline import run_pipeline_bench as _run_pipeline_bench
from facegate.bench.suite import NAMES, SuiteOptions, run_suite
from facegate.cli.output import console, err_console, print_json
from facegate.errors import BenchmarkError

app = typer.Typer(no_args_is_help=True)


class BenchModel(StrEnum):
    sface = "sface"
    dlib = "dlib"
    fused = "fused"


class Peer(StrEnum):
    face_recognition = "face_recognition"


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}"
    return f"{value}{suffix}"


def _table(result: dict[str, Any]) -> Table:
    has_peer = "peer" in result
    table = Table(
        title=f"pipeline, one thread: {result['model']} on {result['images']} images",
        caption=(
            f"speedup {result['speedup']:.2f}x" if has_peer and result.get("speedup") else None
        ),
    )
    table.add_column("")
    table.add_column(f"facegate ({result['model']})", justify="right")
    if has_peer:
        table.add_column(result["peer"], justify="right")

    def row(label: str, key: str, suffix: str = "", sub: str | None = None) -> None:
        def get(prefix: str) -> Any:
            value = result.get(prefix + key)
            return value.get(sub) if isinstance(value, dict) and sub else value

        cells = [_fmt(get(""), suffix)]
        if has_peer:
            cells.append(_fmt(get("peer_"), suffix))
        table.add_row(label, *cells)

    row("images/s", "images_per_s")
    row("ms/image (mean)", "ms_per_image", " ms", "mean")
    row("ms/image (p90)", "ms_per_image", " ms", "p90")
    row("  decode", "stage_ms", " ms", "decode")
    row("  detect", "stage_ms", " ms", "detect")
    row("  embed", "stage_ms", " ms", "embed")
    row("faces", "faces")
    row("images without a face", "images_without_face")
    row("failed images", "failed_images")
    row("cpu time / wall time", "cpu_per_wall")
    return table


@app.command()
def pipeline(
    images: Path = typer.Option(
        ...,
        "--images",
        exists=True,
        file_okay=False,
        dir_okay=True,
        help="Directory searched recursively for .jpg .jpeg .png .webp .bmp (sorted).",
    ),
    limit: int = typer.Option(DEFAULT_LIMIT, "--limit", min=1, help="Time the first N images."),
    model: BenchModel = typer.Option(BenchModel.sface, "--model", help="Embedding model."),
    peer: Peer | None = typer.Option(
        None,
        "--peer",
        help="Also time this library on the same images, interleaved in blocks. "
        "face_recognition: HOG face_locations + face_encodings, its defaults.",
    ),
    warmup: int = typer.Option(
        DEFAULT_WARMUP, "--warmup", min=0, help="Images run first, untimed, on each side."
    ),
    block_size: int = typer.Option(
        DEFAULT_BLOCK_SIZE, "--block-size", min=1, help="Images per alternating block."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Time decode + detect + align + embed per image on one thread, against a peer.

    With --peer, the peer runs on the same images in the same run, alternating with
    facegate in blocks so machine noise hits both alike. Models load and warm up first.
    """
    sides = 2 if peer is not None else 1
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("loading models", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, description="timing", completed=done, total=total)

        result = _run_pipeline_bench(
            images,
            limit=limit,
            model=model.value,
            peer=peer.value if peer is not None else None,
            warmup=warmup,
            block_size=block_size,
            progress=progress,
        )
    if json_out:
        print_json(result)
        return
    console.print(_table(result))
    env = result["environment"]
    threads = result["threads"]
    console.print(
        f"[dim]{env['cpu_model']}, {env['usable_cpus']} usable CPU(s); opencv threads "
        f"{threads['opencv_threads']}; {sides} side(s) in alternating blocks of "
        f"{result['block_size']}; warm-up {result['warmup_images']} image(s) excluded[/]"
    )


@app.command("all")
def all_benchmarks(
    out: Path = typer.Option(
        ..., "--out", file_okay=False, dir_okay=True, help="Folder for the JSON, plots and summary."
    ),
    data: Path = typer.Option(
        Path("../shared/data"),
        "--data",
        exists=True,
        file_okay=False,
        dir_okay=True,
        help="The shared data: faces/ (LFW) and video/.",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Reduced sizes (a few minutes): checks the suite, not for quoting."
    ),
    only: list[str] = typer.Option(
        list(NAMES), "--only", help=f"Run only these (repeat the option): {', '.join(NAMES)}."
    ),
) -> None:
    """Run every benchmark against its peer or baseline in the same run.

    pipeline: facegate (sface, fused) against face_recognition on LFW images, one thread.

    search: facegate's index against exact FAISS.

    stream: the camera worker on the sample clips against real time and a per-frame peer.

    load: the HTTP service under concurrent identify requests against one at a time.

    memory: resident memory of `facegate serve` and bytes per template per backend.

    Writes NAME.json, NAME.png, summary.md and suite.json to --out; about 15 minutes in all.
    """
    options = SuiteOptions(data_dir=data, out=out, quick=quick, only=tuple(only))

    def say(message: str) -> None:
        err_console.print(f"[dim]{message}[/]")

    index = run_suite(options, progress=say)
    table = Table(title=f"facegate bench all -> {out}")
    table.add_column("benchmark")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    for name, entry in index["benchmarks"].items():
        verdict = f"[red]failed: {entry['error']}[/]" if "error" in entry else entry["json"]
        table.add_row(name, verdict, f"{entry['seconds']}")
    console.print(table)
    console.print(f"summary: {out / 'summary.md'}")
    failed = [name for name, entry in index["benchmarks"].items() if "error" in entry]
    if failed:
        raise BenchmarkError(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}")
