"""Learning curves of training runs: the validation metrics per step, from the CSV logger.

    .venv/bin/python benchmarks/curves.py NAME RUN [RUN ...] [--metrics val/reply_ce val/topic_acc]

`--prefix train/` reads the training metrics instead of the validation ones (a GPU lease's
runs validate nothing: recipes/gpu_s2s_base.sh). RUN is a run folder
(`logs/<stage>/runs/<time>`, trained with `logger=csv`); several runs
are one curve, in order (a resumed or warm-started run goes on where the last one stopped,
and a step logged twice keeps the later value). Writes benchmarks/results/curves/NAME.json
and a plot beside it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from telugu_s2s.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results" / "curves"


def read_metrics(run: Path, prefix: str = "val/") -> dict[str, dict[int, float]]:
    """metric -> {step: value} for every `prefix` column of a run's CSV logs."""
    files = sorted(run.glob("csv/version_*/metrics.csv"))
    if not files:
        raise FileNotFoundError(f"{run}: no csv/version_*/metrics.csv (train with logger=csv)")
    curves: dict[str, dict[int, float]] = {}
    for path in files:
        with path.open() as handle:
            for row in csv.DictReader(handle):
                for key, value in row.items():
                    if key.startswith(prefix) and value not in ("", None):
                        curves.setdefault(key, {})[int(row["step"])] = float(value)
    return curves


def join_runs(runs: list[Path], prefix: str = "val/") -> dict[str, list[tuple[int, float]]]:
    """Runs one after the other. A run that goes on counting from the previous run's steps
    (resumed with ckpt_path) keeps that run's shift; one that starts again (a warm start
    with init_from) is shifted to go on after the last step so far."""
    joined: dict[str, list[tuple[int, float]]] = {}
    shift, previous_last = 0, None  # previous_last: the previous run's own last step
    for run in runs:
        curves = read_metrics(run, prefix)
        if not curves:
            raise ValueError(f"{run}: no {prefix} metrics logged")
        first = min(min(points) for points in curves.values())
        if previous_last is not None and first <= previous_last:  # counting from 0 again
            shift += previous_last + 1
        for metric, points in curves.items():
            joined.setdefault(metric, []).extend((s + shift, v) for s, v in sorted(points.items()))
        previous_last = max(max(points) for points in curves.values())
    return joined


def plot(curves: dict[str, list[tuple[int, float]]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 3), squeeze=False)
    for ax, (metric, points) in zip(axes[0], curves.items(), strict=True):
        ax.plot([s for s, _ in points], [v for _, v in points], marker=".")
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the stage's name: the output files are NAME.json/png")
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metrics", nargs="*", default=None, help="default: every PREFIX metric")
    parser.add_argument("--prefix", default="val/", help="val/ or train/")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    curves = join_runs(args.runs, args.prefix)
    if args.metrics:
        missing = sorted(set(args.metrics) - set(curves))
        if missing:
            parser.error(f"not logged by these runs: {missing}; they log {sorted(curves)}")
        curves = {m: curves[m] for m in args.metrics}
    curves = {m: [(s, v) for s, v in p if math.isfinite(v)] for m, p in curves.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "runs": [str(r) for r in args.runs],
        "curves": {m: [{"step": s, "value": round(v, 4)} for s, v in p] for m, p in curves.items()},
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(payload, indent=1))
    plot(curves, args.name, args.out / f"{args.name}.png")
    for metric, points in curves.items():
        print(metric, " ".join(f"{s}:{v:.3f}" for s, v in points))


if __name__ == "__main__":
    main()
