"""Interleaved timing for the bench scripts: each call of a cell is timed in rounds, one sample of
every call per round, so that rates compared in a row were measured side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _sampler(fn: Callable[[], object], sync: Callable[[], None], seconds: float) -> Callable[[], float]:
    """A sample: the mean time of enough calls of ``fn`` to last about ``seconds``."""
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    calls = max(1, int(seconds / max(time.perf_counter() - start, 1e-7)))

    def sample() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        return (time.perf_counter() - start) / calls

    return sample


def rates(
    calls: dict[str, Callable[[], object]], items: int, device: str, rounds: int, seconds: float
) -> dict[str, float]:
    """Items per second of each call: ``items`` over the median of ``rounds`` interleaved samples."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    samplers = {label: _sampler(fn, sync, seconds) for label, fn in calls.items()}
    times: dict[str, list[float]] = {label: [] for label in samplers}
    for _ in range(rounds):
        for label, sample in samplers.items():
            times[label].append(sample())
    return {label: items / statistics.median(t) for label, t in times.items()}
