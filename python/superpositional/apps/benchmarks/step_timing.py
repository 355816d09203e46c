"""How the step benchmark measures: device time per call, host time per call, and extra memory.

- Device time: CUDA events around one call on the GPU (what the GPU spends, including any gap in
  which it waits for the host), wall time on the CPU. Calls are interleaved (every configuration once
  per round, rounds repeated) so that every ratio compares calls made side by side, and the median
  is taken.
- Host time: the Python and launch work of a call, with the GPU's execution taken out: the device is
  synchronised before the call, the call is timed on the host clock without synchronising inside it,
  and synchronised again after. On the CPU this is the wall time.
- Extra memory: the bytes a call allocates beyond what already exists (its temporaries), on CUDA.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["device_seconds", "extra_memory", "host_seconds", "interleave"]


def device_seconds(fn: Callable[[], object], device: str) -> float:
    """Seconds one call of ``fn`` takes on ``device``."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start_time = time.perf_counter()
    fn()
    return time.perf_counter() - start_time


def host_seconds(fn: Callable[[], object], device: str) -> float:
    """Host seconds of one call of ``fn``, the GPU idle and not waited for during the call."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    if device == "cuda":
        torch.cuda.synchronize()  # the next call starts on an idle GPU with an empty queue
    return seconds


def interleave(
    runners: dict[str, Callable[[], object]],
    rounds: int,
    measure: Callable[[Callable[[], object]], float],
    tick: Callable[[], None] = lambda: None,
) -> dict[str, list[float]]:
    """``measure`` of every runner once per round, for ``rounds`` rounds: every sample, per runner."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            samples[name].append(measure(fn))
            tick()
    return samples


def extra_memory(fn: Callable[[], object], device: str) -> int | None:
    """Bytes one call of ``fn`` allocates beyond what is already allocated, on CUDA (else ``None``)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before
