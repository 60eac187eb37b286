"""One matplotlib figure per benchmark of ``facegate bench all`` (Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Plotter = Callable[[dict[str, Any], Path], None]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pipeline(result: dict[str, Any], path: Path) -> None:
    """Milliseconds per image by stage, facegate's models beside face_recognition."""
    plt = _pyplot()
    bars: list[tuple[str, dict[str, float]]] = []
    for model, r in result["models"].items():
        bars.append((f"facegate\n{model}", r["stage_ms"]))
    first = next(iter(result["models"].values()))
    bars.append(("face_recognition", first["peer_stage_ms"]))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bottoms = [0.0] * len(bars)
    for stage in ("decode", "detect", "embed"):
        values = [stages.get(stage, 0.0) for _, stages in bars]
        ax.bar([label for label, _ in bars], values, bottom=bottoms, label=stage)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for x, total in enumerate(bottoms):
        ax.annotate(f"{total:.1f} ms", (x, total), ha="center", va="bottom")
    ax.set_ylabel("ms per image, one thread (mean)")
    ax.set_title(f"Pipeline on {first['images']} LFW images")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_load(result: dict[str, Any], path: Path) -> None:
    """Requests per second and median latency, one at a time against under load."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    labels = ["one at a time", f"{result['clients']} clients"]
    left.bar(labels, [result["unloaded"]["throughput_rps"], result["throughput_rps"]])
    left.set_ylabel("identify requests / s")
    right.bar(labels, [result["unloaded"]["p50_ms"], result["latency_ms"]["p50"]], color="C1")
    right.set_ylabel("median latency, ms")
    fig.suptitle(f"API load: {result['gallery']['subjects']} enrolled, real faces")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_stream(result: dict[str, Any], path: Path) -> None:
    from facegate.bench.stream import plot_stream

    plot_stream(result, path)


def _plot_search(result: dict[str, Any], path: Path) -> None:
    from facegate.bench.search import plot_search

    plot_search(result, path)


def _plot_memory(result: dict[str, Any], path: Path) -> None:
    from facegate.bench.memory import plot_memory

    plot_memory(result, path)


PLOTTERS: dict[str, Plotter] = {
    "pipeline": plot_pipeline,
    "search": _plot_search,
    "stream": _plot_stream,
    "load": plot_load,
    "memory": _plot_memory,
}
