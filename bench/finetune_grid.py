"""The fine-tuning ablation: ``finetune`` runs of several seeds, each holding the same arms, as one
table of paired differences to AdamW (and a plot of them against lambda).

Each seed's run is one ``finetune.json`` (``python -m superpositional finetune --seed S --arms ...``):
its arms share initial weights, data order and dropout, so an arm's difference to AdamW is paired
by seed, with Student's 95% interval as in ``python -m superpositional ablation``. Lower losses are
better; a verdict needs the interval to exclude 0.

    python3 bench/finetune_grid.py RUN_DIR... --out results/ --name finetune-grid-cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from superpositional.apps.ablation import paired_difference

BASELINE = "adamw"
METRICS = (("mean_loss", "train loss"), ("eval_loss", "held-out loss"), ("accuracy", "exact match"))


def load(runs: list[Path]) -> list[dict]:
    """The runs' ``finetune.json``, which must hold the same arms at the same lr."""
    records = [json.loads((run / "finetune.json").read_text()) for run in runs]
    arms = [list(r["results"]) for r in records]
    if any(a != arms[0] for a in arms) or len({r["lr"] for r in records}) != 1:
        raise SystemExit("every run must hold the same arms, in the same order, at the same lr")
    if len({r["seed"] for r in records}) != len(records):
        raise SystemExit("every run must have its own seed")
    return records


def summarize(records: list[dict]) -> list[dict]:
    rows = []
    for arm in records[0]["results"]:
        row: dict = {"arm": arm}
        for key, _ in METRICS:
            values = [r["results"][arm][key] for r in records]
            base = [r["results"][BASELINE][key] for r in records]
            row[key] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "difference": paired_difference(values, base),
            }
        rows.append(row)
    return rows


def verdict(difference: dict, lower_is_better: bool) -> str:
    low, high = difference["low"], difference["high"]
    if low is None:
        return "?"
    if low > 0:
        return "worse" if lower_is_better else "better"
    if high < 0:
        return "better" if lower_is_better else "worse"
    return "no change"


def table(rows: list[dict], seeds: int) -> str:
    def cell(m: dict, scale: float = 1.0, digits: int = 4) -> str:
        d = m["difference"]
        interval = (
            "" if d["low"] is None else f" [{d['low'] * scale:+.{digits}f}, {d['high'] * scale:+.{digits}f}]"
        )
        spread = f"{m['mean'] * scale:.{digits}f} +- {m['std'] * scale:.{digits}f}"
        return f"{spread}, {d['mean'] * scale:+.{digits}f}{interval}"

    lines = [
        f"(mean +- std over {seeds} seeds, then the difference to AdamW paired by seed [95% interval])",
        "| arm | train loss | held-out loss | exact match (%) | verdict (held-out loss) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['arm']} | {cell(row['mean_loss'])} | {cell(row['eval_loss'])} | "
            f"{cell(row['accuracy'], 100, 1)} | {verdict(row['eval_loss']['difference'], True)} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    series: dict[tuple[str, str], list[tuple[float, dict]]] = {}
    for row in rows:
        if row["arm"] == BASELINE:
            continue
        cell = dict(part.split("=") for part in row["arm"].split(","))
        key = (cell.get("coverage", "paper"), cell.get("perturbation", "paper"))
        series.setdefault(key, []).append((float(cell["lambda"]), row["eval_loss"]["difference"]))
    # Each series is nudged sideways on the log axis so that the intervals do not hide each other.
    for shift, ((coverage, perturbation), points) in zip((0.88, 0.94, 1.06, 1.12), sorted(series.items())):
        points.sort(key=lambda p: p[0])
        x = [p[0] * shift for p in points]
        mean = [p[1]["mean"] for p in points]
        low = [p[1]["mean"] - p[1]["low"] for p in points]
        high = [p[1]["high"] - p[1]["mean"] for p in points]
        ax.errorbar(
            x,
            mean,
            yerr=[low, high],
            marker="o",
            capsize=3,
            label=f"coverage {coverage}, {perturbation} term",
        )
    ax.axhline(0, color="black", linewidth=0.8, label="AdamW")
    ax.set_xscale("log")
    ax.set_xlabel("lambda (quantum_weight)")
    ax.set_ylabel("held-out loss minus AdamW's (lower is better)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="finetune output folders, one per seed")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--name", default="finetune-grid")
    args = parser.parse_args()
    records = load(args.runs)
    rows = summarize(records)
    print(table(rows, len(records)))
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": records[0]["model"],
        "lr": records[0]["lr"],
        "seeds": [r["seed"] for r in records],
        "device": records[0]["device"],
        "environment": records[0]["environment"],
        "rows": rows,
        "runs": {
            r["seed"]: {
                arm: {k: v for k, v in res.items() if k != "losses"} for arm, res in r["results"].items()
            }
            for r in records
        },
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = (
        f"finetune --model {records[0]['model']}, lr {records[0]['lr']:g}, {len(records)} seeds: "
        "held-out loss minus AdamW's (95% interval)"
    )
    plot(rows, args.out / f"{args.name}.png", title)
    print(f"wrote {args.out / args.name}.json and .png")


if __name__ == "__main__":
    main()
