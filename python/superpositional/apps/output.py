"""What the applications show and write: plain-text tables, JSON results and plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["format_table", "save_plot", "write_json"]


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
