"""The markdown summary of a ``facegate bench all`` run: one table per benchmark (its
figures and its ratios against the peer or baseline of the same run) and its plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _environment_line(results: dict[str, dict[str, Any]]) -> str:
    for result in results.values():
        env = result.get("environment")
        if isinstance(env, dict):
            cpu = env.get("cpu_model") or env.get("cpu") or "?"
            cpus = env.get("usable_cpus") or env.get("cpus") or "?"
            return f"Machine: {cpu}, {cpus} usable CPU(s); facegate {env.get('facegate', '?')}."
    return ""


def render_summary(index: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# facegate benchmarks",
        "",
        f"Run {index['started_at']} to {index.get('finished_at', '?')}"
        + (
            " (quick: reduced sizes, for checking the suite, not for quoting)."
            if index["quick"]
            else "."
        ),
        _environment_line(results),
        "",
    ]
    for name, entry in index["benchmarks"].items():
        lines += [f"## {name}", ""]
        if "error" in entry:
            lines += [f"**Failed** after {entry['seconds']} s: `{entry['error']}`", ""]
            continue
        result = results[name]
        lines += ["| figure | value |", "|---|---:|"]
        for row in result.get("summary", []):
            unit = f" {row['unit']}" if row.get("unit") else ""
            lines.append(f"| {row['label']} | {_number(row['value'])}{unit} |")
        for label, ratio in result.get("ratios", {}).items():
            lines.append(f"| ratio: {label} | {_number(ratio)}x |")
        lines.append("")
        notes = result.get("notes")
        if isinstance(notes, dict):
            lines += [f"- {key}: {text}" for key, text in notes.items()] + [""]
        elif notes:
            lines += [str(notes), ""]
        if "plot" in entry:
            lines += [f"![{name}]({entry['plot']})", ""]
        elif "plot_error" in entry:
            lines += [f"(plot failed: `{entry['plot_error']}`)", ""]
        lines += [f"Details: [{entry['json']}]({entry['json']}), {entry['seconds']} s.", ""]
    return "\n".join(lines)


def write_summary(path: Path, index: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    path.write_text(render_summary(index, results), encoding="utf-8")
