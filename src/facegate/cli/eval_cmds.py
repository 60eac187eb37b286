"""``facegate eval``: accuracy on a labelled photo set, and calibration of operating points.

Progress bars go to stderr, so ``--json`` output on stdout stays clean. The models run on
one thread (``single_thread``), so timings are per core and comparable between runs.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from facegate.cli.common import load_settings
from facegate.cli.output import console, err_console, print_json
from facegate.config import VisionSettings

app = typer.Typer(no_args_is_help=True)


class ModelChoice(StrEnum):
    sface = "sface"
    dlib = "dlib"
    fused = "fused"


ROOT_HELP = "Image root: one folder per identity (e.g. ../shared/data/faces)."
CACHE_HELP = (
    "Where embeddings are cached (default ~/.cache/facegate/eval; never inside the project)."
)
FLIP_HELP = (
    "Average SFace embeddings of each face and its mirror (default: the configured setting)."
)


def _vision(flip_average: bool | None) -> VisionSettings:
    from facegate.vision.models import single_thread

    single_thread()
    vision = load_settings().vision
    if flip_average is not None:
        vision = vision.model_copy(update={"flip_average": flip_average})
    return vision


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, _fmt(value))
    return table


def _report(result: dict[str, Any], keys: str, what: str, json_out: bool) -> None:
    """The whole result as JSON, or the headline figures as a table (notes on stderr)."""
    if json_out:
        print_json(result)
        return
    shown = {k: result[k] for k in keys.split()}
    shown["failures"] = result["failures"]["count"]
    if "plots" in result:
        shown["plots"] = ", ".join(result["plots"])
    console.print(_table(f"{what}, {result['model']}", shown))
    for note in result.get("notes", []):
        err_console.print(f"[dim]note: {note}[/]")


@app.command()
def pairs(
    pairs_csv: Path = typer.Option(
        ..., "--pairs", exists=True, dir_okay=False, help="CSV with img1,img2,same,fold."
    ),
    root: Path = typer.Option(..., "--root", exists=True, file_okay=False, help=ROOT_HELP),
    model: ModelChoice = typer.Option(ModelChoice.sface, "--model", help="Model to evaluate."),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    plot: Path | None = typer.Option(
        None, "--plot", file_okay=False, help="Write roc.png and det.png to this folder."
    ),
    flip_average: bool | None = typer.Option(
        None, "--flip-average/--no-flip-average", help=FLIP_HELP
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Embed again; read and write no cache."
    ),
) -> None:
    """1:1 verification on a pairs file: fold-cross-validated accuracy, AUC, EER, TAR@FAR."""
    from facegate.eval.pairs import evaluate_pairs

    result = evaluate_pairs(
        pairs_csv,
        root,
        model.value,
        settings=_vision(flip_average),
        cache_dir=cache_dir,
        use_cache=not no_cache,
        progress=True,
        plot_dir=plot,
    )
    keys = "model n_pairs accuracy accuracy_std auc eer tar_at_far threshold_mean"
    keys += " fold_accuracies seconds"
    _report(result, keys, "verification", json_out)


@app.command()
def identify(
    root: Path = typer.Option(..., "--root", exists=True, file_okay=False, help=ROOT_HELP),
    model: ModelChoice = typer.Option(ModelChoice.sface, "--model", help="Model to evaluate."),
    json_out: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    flip_average: bool | None = typer.Option(
        None, "--flip-average/--no-flip-average", help=FLIP_HELP
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Embed again; read and write no cache."
    ),
) -> None:
    """Open-set 1:N: first image of each multi-image folder enrolled; rank-1, FNIR@FPIR."""
    from facegate.eval.identify import evaluate_identification

    result = evaluate_identification(
        root,
        model.value,
        settings=_vision(flip_average),
        cache_dir=cache_dir,
        use_cache=not no_cache,
        progress=True,
    )
    keys = "model gallery_size n_mated n_nonmated rank1 fnir_at_fpir threshold_at_fpir seconds"
    _report(result, keys, "identification", json_out)


@app.command()
def calibrate(
    root: str = typer.Option(..., "--root", help=ROOT_HELP),
    out: Path | None = typer.Option(
        None,
        "--out",
        dir_okay=False,
        help="Where to write calibration.json (default: the one shipped in facegate/vision/data).",
    ),
    json_out: bool = typer.Option(
        False, "--json", help="Print the calibration and fusion grid as JSON."
    ),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help=CACHE_HELP),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Embed again; read and write no cache."
    ),
) -> None:
    """Score statistics and FMR thresholds for sface, dlib and fused, from every pair."""
    from facegate.errors import ConfigError
    from facegate.eval.calibrate import calibrate as run_calibration
    from facegate.eval.calibrate import default_output, write_calibration

    if not Path(root).is_dir():
        raise ConfigError(f"image root {root} is not a folder")
    # Calibration describes the product's default embeddings: no flip averaging.
    result = run_calibration(
        Path(root),
        root_label=root,
        settings=_vision(False),
        cache_dir=cache_dir,
        use_cache=not no_cache,
        progress=True,
    )
    written = write_calibration(result.data, out or default_output())
    if json_out:
        print_json(
            {
                "out": str(written),
                "seconds": round(result.seconds, 3),
                "calibration": result.data,
                "fusion_grid": result.fusion_grid,
            }
        )
        return
    models = result.data["models"]
    table = Table(title=f"calibration -> {written}")
    table.add_column("figure", style="bold")
    for name in models:
        table.add_column(name, justify="right")

    def row(label: str, get: Any) -> None:
        cells = [get(m) for m in models.values()]
        table.add_row(label, *("" if v is None else f"{v:.4f}" for v in cells))

    for stat in ("impostor_mean", "impostor_std", "genuine_mean"):
        row(stat.replace("_", " "), lambda m, stat=stat: m.get(stat))
    for key in ("1e-2", "1e-3", "1e-4"):
        row(f"threshold @ FMR {key}", lambda m, key=key: m["thresholds"][key])
    for key in ("1e-2", "1e-3", "1e-4"):
        row(f"TAR @ FMR {key}", lambda m, key=key: m["tar"][key])
    console.print(table)
    fusion = result.data["models"]["fused"]["fusion"]
    w_s, w_d = fusion["sface"]["weight"], fusion["dlib"]["weight"]
    console.print(
        f"fusion weights: sface {w_s:.2f}, dlib {w_d:.2f} (grid step 0.05, max TAR at FMR 1e-3)"
    )
    console.print(f"dataset: {result.data['dataset']}")
