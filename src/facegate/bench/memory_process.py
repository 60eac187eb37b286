"""Memory of a process tree, read from Linux ``/proc``: ``VmRSS`` (resident now) and
``VmHWM`` (the peak so far) from ``/proc/<pid>/status``, for a process and for every child
it has (found through each thread's ``children``), summed by ``process_memory``;
``self_rss`` is the resident memory of this process. Part of the memory benchmark
(:mod:`facegate.bench.memory`); Linux only, and nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


# --- /proc ------------------------------------------------------------------------------------
def _status_bytes(pid: int | str) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of one process, in bytes (Linux ``/proc``)."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024  # reported in kB
    return found


def _descendants(pid: int) -> list[int]:
    """Every child process of ``pid``, recursively (from each thread's ``children``)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="utf-8") as handle:
                children = [int(c) for c in handle.read().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def process_memory(pid: int) -> dict[str, Any]:
    """RSS and peak RSS of ``pid`` and of its children, summed (bytes). The summed peak
    is an upper bound: the processes need not have peaked at the same moment."""
    main = _status_bytes(pid)
    children = []
    for child in _descendants(pid):
        with contextlib.suppress(OSError):  # a child that just ended
            children.append(_status_bytes(child))
    return {
        "rss_bytes": main["VmRSS"] + sum(c["VmRSS"] for c in children),
        "peak_rss_bytes": main["VmHWM"] + sum(c["VmHWM"] for c in children),
        "main_process_rss_bytes": main["VmRSS"],
        "child_processes": len(children),
    }


def self_rss() -> int:
    """``VmRSS`` of this process, in bytes."""
    return _status_bytes("self")["VmRSS"]
