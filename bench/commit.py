"""The checkout's commit for the benchmarks' provenance (the installed package has no repository)."""

import os
import subprocess
from pathlib import Path

from superpositional.apps.benchmarks.common import COMMIT_VARIABLE


def export_commit() -> None:
    """Set ``SUPERPOSITIONAL_COMMIT`` from this checkout unless it is set already (``bench/h200.sh``
    sets it on machines whose copy of the tree has no ``.git``)."""
    if os.environ.get(COMMIT_VARIABLE):
        return
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if commit:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        os.environ[COMMIT_VARIABLE] = commit + ("+dirty" if dirty else "")


def commit() -> str:
    """The commit a benchmark's JSON records: the checkout's, or ``SUPERPOSITIONAL_COMMIT``'s."""
    export_commit()
    return os.environ.get(COMMIT_VARIABLE, "unknown")
