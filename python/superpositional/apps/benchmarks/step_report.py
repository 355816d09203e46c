"""The step benchmark's report: its tables (text) and its plot, read from the JSON it writes.

Tables: the single-tensor sweep per dtype (sizes as columns), one table per dtype of the Llama-like
list (configurations as rows), host time per step, effective bandwidth by dtype at the largest single
size, the torch.compile peer's agreement, and the configurations skipped with why. Every time is the
median of interleaved samples with its spread (``±``, :mod:`..timings`), and a caveat follows the
tables when some are too noisy to trust or the machine is busy.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..timings import Timing, caveat, summarize
from .common import format_table, run_label, significant

__all__ = ["plot", "run_label", "significant", "table"]

# docs/design.md, *Performance*: the fused step with coverage "all", entangled(4), against AdamW(fused=True).
TARGET_ALL = {"cpu": 1.5, "cuda": 1.0}
MiB = 2**20


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{significant(100 * fraction)}%"


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def _timing(row: dict) -> Timing:
    """The median and spread of a row's samples (``seconds_all``)."""
    return summarize(row["seconds_all"])


def _key(row: dict) -> str:
    """A row's name across dtypes: the copy row's name carries its bytes per element."""
    return "copy" if row["kind"] == "copy" else row["config"]


def _merged(lists: list[list[str]]) -> list[str]:
    """The names of several ordered lists in one order that keeps each list's: a name missing from
    the earlier lists goes right after its predecessor in its own (so a 16-bit-only row sits beside
    its siblings, not at the end)."""
    order: list[str] = []
    for names in lists:
        previous = None
        for name in names:
            if name not in order:
                order.insert(order.index(previous) + 1 if previous is not None else 0, name)
            previous = name
    return order


def _rows_by_dtype(data: dict, workload: str) -> list[tuple[str, list[dict]]]:
    """``workload``'s results per dtype of its layout, in that order, dtypes without results left out."""
    by_dtype = [
        (dtype, [r for r in data["results"] if r["workload"] == workload and r["dtype"] == dtype])
        for dtype in data["workloads"][workload]["dtypes"]
    ]
    return [(dtype, rows) for dtype, rows in by_dtype if rows]


def _single_tables(data: dict) -> list[str]:
    layout = data["workloads"].get("single")
    if not layout:
        return []
    lines = []
    for dtype, rows in _rows_by_dtype(data, "single"):
        sizes = sorted({r["log2_params"] for r in rows})
        index = {(r["config"], r["log2_params"]): r for r in rows}
        names = list(dict.fromkeys(r["config"] for r in rows))
        body = []
        for name in names:
            first = next(r for r in rows if r["config"] == name)
            cells = [name, str(first["bytes_per_param"])]
            for k in sizes:
                r = index.get((name, k))
                cells.append(
                    "-"
                    if r is None
                    else f"{significant(r['seconds'] * 1e3)} ms {_timing(r).spread_text()} "
                    f"{_ratio(r['vs_adamw_fused'])} "
                    f"{significant(r['gbytes_per_s'])} GB/s {_percent(r['copy_fraction'])}"
                )
            body.append(cells)
        lines += [
            "",
            f"single tensor [2^k/1024, 1024], {dtype} ({data['device']}): step time (median of "
            f"{data['rounds']} interleaved rounds, ± half their interquartile range), ratio to torch "
            "AdamW(fused=True), effective bandwidth at the storage dtypes and its share of the copy "
            "bandwidth",
            format_table(["config", "B/param", *(f"2^{k}" for k in sizes)], body),
        ]
        speedups = []
        for k in sizes:
            ours = index.get(("ours all entangled(4)", k))
            slow = index.get(("torch-backend all entangled(4)", k))
            if ours and slow:
                speedups.append(f"2^{k}: {slow['seconds'] / ours['seconds']:.0f}x")
        if speedups:
            lines.append(
                "fused kernel vs our torch backend, coverage all, entangled(4): " + ", ".join(speedups)
            )
        memory = [
            f"{r['config']}: {r['extra_bytes'] / MiB:.1f} MiB"
            for r in rows
            if r["log2_params"] == sizes[-1] and r.get("extra_bytes") is not None
        ]
        if memory:
            lines.append(
                f"memory a step allocates beyond params, grads and states at 2^{sizes[-1]}: "
                + ", ".join(memory)
            )
    return lines


def _list_tables(data: dict) -> list[str]:
    layout = data["workloads"].get("llama")
    if not layout:
        return []
    lines = []
    for dtype, rows in _rows_by_dtype(data, "llama"):
        body = [
            [
                r["config"],
                r["state_dtype"] or "-",
                str(r["bytes_per_param"]),
                significant(r["seconds"] * 1e3),
                _timing(r).spread_text(),
                _ratio(r["vs_adamw_fused"]),
                significant(r["gbytes_per_s"]),
                _percent(r["copy_fraction"]),
                "-" if r["extra_bytes"] is None else f"{r['extra_bytes'] / MiB:.1f}",
            ]
            for r in rows
        ]
        lines += [
            "",
            f"Llama-like list, {layout['tensors']} tensors, {significant(layout['params'] / 1e6)} M "
            f"parameters, {dtype} ({data['device']}): median of {data['rounds']} interleaved rounds "
            "(±: half their interquartile range)",
            format_table(
                ["config", "states", "B/param", "ms", "±", "vs AdamW", "GB/s", "% copy", "extra MiB"], body
            ),
        ]
    return lines


def _host_table(data: dict) -> list[str]:
    if not data["host"]:
        return []
    columns = list(dict.fromkeys((h["list"], h["dtype"]) for h in data["host"]))
    index = {(h["config"], h["list"], h["dtype"]): h for h in data["host"]}
    tensors = {h["list"]: h["tensors"] for h in data["host"]}
    params = {h["list"]: h["params"] for h in data["host"]}
    body = []
    for name in _merged(
        [[h["config"] for h in data["host"] if (h["list"], h["dtype"]) == c] for c in columns]
    ):
        cells = [name]
        for lst, dtype in columns:
            h = index.get((name, lst, dtype))
            cells.append(
                "-"
                if h is None
                else f"{significant(h['seconds'] * 1e6)} us {_timing(h).spread_text()} "
                f"{_ratio(h['vs_adamw_fused'])}"
            )
        body.append(cells)
    header = [
        "config",
        *(f"{lst} {tensors[lst]} x {params[lst] // tensors[lst]} {dtype}" for lst, dtype in columns),
    ]
    calls = max(len(h["seconds_all"]) for h in data["host"])
    return [
        "",
        f"host time per step ({data['device']}): the Python and launch work of opt.step() with the device "
        f"idle and not waited for (median of {calls} interleaved calls, ± half their interquartile range), "
        "ratio to torch AdamW(fused=True); columns: list, tensors x mean elements, dtype",
        format_table(header, body),
    ]


def _bandwidth_table(data: dict) -> list[str]:
    layout = data["workloads"].get("single")
    if not layout:
        return []
    k = layout["bandwidth_log2"]
    rows = [r for r in data["results"] if r["workload"] == "single" and r["log2_params"] == k]
    dtypes = [d for d in layout["bandwidth_dtypes"] if any(r["dtype"] == d for r in rows)]
    if len(dtypes) < 2:
        return []
    index = {(_key(r), r["dtype"]): r for r in rows}
    body = []
    for name in _merged([[_key(r) for r in rows if r["dtype"] == dtype] for dtype in dtypes]):
        cells = [name]
        for dtype in dtypes:
            r = index.get((name, dtype))
            cells.append(
                "-"
                if r is None
                else f"{significant(r['gbytes_per_s'])} GB/s {_percent(r['copy_fraction'])} "
                f"{_ratio(r['vs_adamw_fused'])} ({r['bytes_per_param']} B)"
            )
        body.append(cells)
    return [
        "",
        f"effective bandwidth by parameter dtype, single tensor of 2^{k} ({data['device']}): GB/s at the "
        "storage dtypes, share of the same run's copy bandwidth, ratio to AdamW(fused=True), bytes per param",
        format_table(["config", *dtypes], body),
    ]


def _compile_lines(data: dict) -> list[str]:
    lines = []
    for c in data["compile"]:
        size = f" 2^{c['log2_params']}" if c["log2_params"] is not None else ""
        where = f"{c['workload']}{size} {c['dtype']}"
        if c["mode"] is None:
            lines.append(f"torch.compile peer, {where}: no row, compiling failed: {c['error']}")
            continue
        agreement = (
            f"max |p - p_ours| after one step {c['max_abs_diff']:.2e}"
            if c.get("max_abs_diff") is not None
            else "no kernel row to compare with"
        )
        fallback = f" (fullgraph failed: {c['error']})" if c["error"] else ""
        lines.append(
            f"torch.compile peer, {where}: {c['mode']} mode{fallback}, "
            f"compiled in {c['compile_seconds']:.1f} s, {agreement}"
        )
    return ["", *lines] if lines else []


def _skipped_lines(data: dict) -> list[str]:
    counts = Counter((s["config"], s["note"]) for s in data["skipped"])
    return [f"skipped {name} ({n} case{'s' * (n > 1)}): {note}" for (name, note), n in counts.items()]


def table(data: dict) -> str:
    """Every table of a run, as text."""
    lines = [
        *_single_tables(data),
        *_list_tables(data),
        *_host_table(data),
        *_bandwidth_table(data),
        *_compile_lines(data),
    ]
    skipped = _skipped_lines(data)
    if skipped:
        lines += ["", *skipped]
    if (note := _caveat(data)) is not None:
        lines += ["", note]
    return "\n".join(lines).lstrip("\n")


def _caveat(data: dict) -> str | None:
    """The caveat over every timing of the run (device and host times)."""
    timings = {}
    for r in data["results"]:
        size = f" 2^{r['log2_params']}" if r["log2_params"] is not None else ""
        timings[f"{r['config']} ({r['workload']}{size} {r['dtype']})"] = _timing(r)
    for h in data["host"]:
        timings[f"host {h['config']} ({h['list']} {h['dtype']})"] = _timing(h)
    return caveat(timings, "step timings")


def plot(data: dict, path: Path) -> None:
    """Single tensor: step time and ratio to AdamW against size; Llama-like list: ratio per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single = data["workloads"].get("single")
    sweep_dtype = single["dtypes"][0] if single else None
    sweep = [r for r in data["results"] if r["workload"] == "single" and r["dtype"] == sweep_dtype]
    llama = data["workloads"].get("llama")
    list_dtypes = [
        d
        for d in (llama["dtypes"] if llama else [])
        if any(r["workload"] == "llama" and r["dtype"] == d for r in data["results"])
    ]
    nrows = bool(sweep) + bool(list_dtypes)
    if nrows == 0:
        return
    ncols = max(2, len(list_dtypes))
    fig = plt.figure(figsize=(6 * ncols, 4.5 * nrows))
    grid = fig.add_gridspec(nrows, ncols)
    if sweep:
        left, right = fig.add_subplot(grid[0, : ncols // 2]), fig.add_subplot(grid[0, ncols // 2 :])
        for i, name in enumerate(dict.fromkeys(r["config"] for r in sweep)):
            colour = f"C{i % 10}"  # one colour per configuration in both panels
            points = sorted(
                (r["params"], r["seconds"], r["vs_adamw_fused"]) for r in sweep if r["config"] == name
            )
            sizes, seconds, ratios = zip(*points)
            left.loglog(sizes, [s * 1e3 for s in seconds], marker="o", color=colour, label=name)
            if not name.startswith(("copy", "torch-backend", "adamw foreach")) and None not in ratios:
                right.semilogx(sizes, ratios, marker="o", color=colour, label=name)
        left.set_xlabel("parameters")
        left.set_ylabel("step time (ms)")
        left.set_title(f"single tensor, {sweep_dtype}")
        left.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=7)
        right.axhline(1.0, color="gray", lw=0.8)
        target = TARGET_ALL[data["device"]]
        right.axhline(target, color="red", lw=0.8, ls="--", label=f"target, coverage all: {target}x")
        right.set_xlabel("parameters")
        right.set_ylabel("time / AdamW(fused=True)")
        right.grid(True, which="both", alpha=0.3)
        right.legend(fontsize=7)
    for column, dtype in enumerate(list_dtypes):
        axis = fig.add_subplot(grid[nrows - 1, column])
        rows = [
            r
            for r in data["results"]
            if r["workload"] == "llama" and r["dtype"] == dtype and r["vs_adamw_fused"] is not None
        ]
        names = [r["config"] for r in rows]
        ratios = [r["vs_adamw_fused"] for r in rows]
        colours = [{"copy": "gray", "peer": "gray", "ours": "C0"}.get(r["kind"], "C1") for r in rows]
        # Whiskers: the row's interquartile range of times over the peer's median time.
        peer = next((r["seconds"] / r["vs_adamw_fused"] for r in rows if r["vs_adamw_fused"]), None)
        spans = [_timing(r) for r in rows]
        whiskers = (
            [[(t.median - t.low) / peer for t in spans], [(t.high - t.median) / peer for t in spans]]
            if peer
            else None
        )
        axis.barh(range(len(rows)), ratios, color=colours, xerr=whiskers, capsize=2, ecolor="black")
        axis.set_yticks(range(len(rows)), names, fontsize=7)
        axis.invert_yaxis()
        axis.axvline(1.0, color="black", lw=0.8)
        for y, ratio in enumerate(ratios):  # the label past the whisker, not on it
            axis.text(
                ratio + (whiskers[1][y] if whiskers else 0), y, f" {ratio:.2f}x", va="center", fontsize=7
            )
        axis.set_xlabel("time / AdamW(fused=True) (whiskers: interquartile range)")
        axis.set_title(f"Llama-like list, {significant(llama['params'] / 1e6)} M params, {dtype}")
    env = data["environment"]
    fig.suptitle(f"optimizer step, {data['device']}: {env.get('gpu', env['cpu'])}, {run_label(data)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
