"""How the applications report timings: a median over repeated samples, its spread, and a plain
caveat when the spread (or a busy machine) makes the numbers too noisy to trust.

Every timing a command shows is a median over samples taken interleaved with its peers (the other
arms of the demo, the other backends or optimizers of a benchmark), so that a ratio compares
samples taken side by side. Its spread is half the interquartile range over the median, printed as
``±x%``: the middle half of the samples lies within about that of the median. Above
:data:`NOISY_SPREAD` (5%) a timing is called too noisy to trust: on an idle machine repeated
samples of the same work agree to a few percent, while the effects these commands report (a step
at 0.94x or 1.1x of AdamW's, an epoch 2% slower) are of that size; a machine running more than it
has CPUs for gives spreads of 20-100% and stalls of a scheduler time slice.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .output import machine_load

__all__ = ["NOISY_SPREAD", "Timing", "caveat", "summarize"]

NOISY_SPREAD = 0.05


@dataclass(frozen=True)
class Timing:
    """The median of some samples (seconds, or a ratio) and their quartiles."""

    median: float
    low: float  # first quartile
    high: float  # third quartile
    samples: int

    @property
    def spread(self) -> float | None:
        """Half the interquartile range over the median; ``None`` when it cannot be known (one sample)."""
        if self.samples < 2 or self.median <= 0:
            return None
        return (self.high - self.low) / (2 * self.median)

    @property
    def noisy(self) -> bool:
        """Whether the spread is too large to trust the median (see the module's docstring)."""
        return self.spread is not None and self.spread > NOISY_SPREAD

    def spread_text(self) -> str:
        """``±x%`` (one decimal below 10%), or ``±?`` for a single sample."""
        if self.spread is None:
            return "±?"
        percent = 100 * self.spread
        return f"±{percent:.1f}%" if percent < 10 else f"±{percent:.0f}%"


def summarize(samples: Sequence[float]) -> Timing:
    """The median and quartiles of ``samples`` (at least one)."""
    if not samples:
        raise ValueError("no samples to summarize")
    values = sorted(samples)
    if len(values) == 1:
        return Timing(values[0], values[0], values[0], 1)
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return Timing(statistics.median(values), low, high, len(values))


def caveat(timings: Mapping[str, Timing], what: str = "timings") -> str | None:
    """A plain warning when any of ``timings`` is too noisy to trust, only single samples were taken,
    or the machine is busy now; ``None`` when none of these holds. Names the noisiest (at most 8)."""
    reasons = []
    noisy = dict(
        sorted(((n, t) for n, t in timings.items() if t.noisy), key=lambda item: -(item[1].spread or 0))
    )
    if noisy:
        named = ", ".join(f"{name} {t.spread_text()}" for name, t in list(noisy.items())[:8])
        more = f" and {len(noisy) - 8} more" if len(noisy) > 8 else ""
        reasons.append(
            f"{len(noisy)} of {len(timings)} {what} vary by more than ±{100 * NOISY_SPREAD:.0f}% between "
            f"repeats ({named}{more})"
        )
    if timings and all(t.samples < 2 for t in timings.values()):
        reasons.append(f"every one of the {what} is a single sample, so its noise is unknown")
    load = machine_load()
    # Called when the timed work ends, so the load average includes that work itself: its thread
    # team keeps up to every CPU busy, with its main thread beside it. Only load beyond one more
    # CPU's worth is other work (a demo alone on an idle 2-CPU machine ends near 2.0-2.3).
    if load is not None and load[0] > load[1] + 1:
        reasons.append(f"the machine is busy (load average {load[0]:.1f} on {load[1]} CPUs)")
    if not reasons:
        return None
    text = (
        f"caution: these {what} are not to be trusted: {'; '.join(reasons)}. Differences smaller "
        "than the spread mean nothing; run again on an idle machine."
    )
    return textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)
