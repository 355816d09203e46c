"""What the applications show and write: plain-text tables, JSON results and plots."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["busy_note", "format_table", "machine_load", "save_plot", "write_json"]


def machine_load() -> tuple[float, int] | None:
    """The 1-minute load average and the CPUs this process may use, or ``None`` where the platform
    has no load average."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return load, cpus


def busy_note() -> str | None:
    """A warning when the machine runs more than it has CPUs for (the 1-minute load average): its
    timings are not to be trusted, and OpenMP teams wait for descheduled threads (bench/busy.py
    measured 0.3 ms a training-probe iteration idle, over 100 ms under two busy loops on 2 CPUs)."""
    load = machine_load()
    if load is None or load[0] <= load[1]:
        return None
    return (
        f"note: this machine is busy (load average {load[0]:.1f} on {load[1]} CPUs): timings are slower "
        "and noisier than on an idle machine, and not comparable with the README's figures"
    )


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Right-aligned columns under a header and a rule."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=False)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (its folder created), and say so; values JSON has no
    type for (paths, dtypes) are written as their text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"wrote {path}")


def save_plot(plot: Callable[[Path], None], path: Path, extra: str) -> None:
    """``plot(path)`` and say so; without matplotlib, say which extra brings it."""
    try:
        plot(path)
    except ImportError:
        print(f"matplotlib is not installed: no plot (pip install 'superpositional[{extra}]')")
        return
    print(f"wrote {path}")
