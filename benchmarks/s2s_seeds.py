"""How much of the S2S evaluation is sampling noise: the evaluation protocol over several seeds.

    .venv/bin/python benchmarks/s2s_seeds.py [--seeds 5] [--split test] [--threads 2]

Runs `telugu_s2s.evaluation.s2s.evaluate_s2s` once per sampling seed (the protocol's `seed`:
rendering i samples with seed + i) on the same held-out split, with the committed
checkpoints, and writes benchmarks/results/s2s_seeds.json: every metric per seed with its mean
and standard deviation, and the paired memory ablation. For the ablation, the per-turn edits
of the context-dependent turns are summed over seeds; the corpus-level CER difference
(memory off - memory on) gets a 95% bootstrap interval by resampling turns, so a positive
interval means the memory lowers the CER beyond sampling noise. Also s2s_seeds.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from telugu_s2s.evaluation.cer import normalize_text
from telugu_s2s.evaluation.s2s import EvalModels, ProtocolConfig, evaluate_s2s
from telugu_s2s.paths import REPO_ROOT

OUT = REPO_ROOT / "benchmarks" / "results"
METRICS = (
    "monologue_cer", "speaking_cer", "reply_audio_valid_cer", "self_round_trip_cer", "user_transcript_cer", "topic_accuracy", "sentiment_mae",
    "emotion_accuracy", "context_cer_memory_on", "context_cer_memory_off", "speaker_id_accuracy",
    "f0_within_15pct", "style_differs",
)  # fmt: skip


def context_edits(report: dict) -> dict[tuple, tuple[float, float, int]]:
    """(dialog, user voice, turn) -> (edits with memory, edits without, reference characters)."""
    out = {}
    for r in report["per_turn"]:
        if r.get("memory_off_cer") is None:
            continue
        chars = max(len(normalize_text(r["reference"])), 1)
        key = (r["dialog"], r["user_voice"], r["turn"])
        out[key] = (r["monologue_cer"] * chars, r["memory_off_cer"] * chars, chars)
    return out


def paired_memory_effect(reports: list[dict], resamples: int = 2000, seed: int = 0) -> dict:
    """CER(memory off) - CER(memory on) over seeds x context turns, with a turn bootstrap."""
    per_seed = [context_edits(r) for r in reports]
    keys = sorted(per_seed[0])
    on = np.array([[s[k][0] for k in keys] for s in per_seed]).sum(0)  # (turns,) edits over seeds
    off = np.array([[s[k][1] for k in keys] for s in per_seed]).sum(0)
    chars = np.array([per_seed[0][k][2] for k in keys]) * len(per_seed)
    effect = lambda idx: (off[idx].sum() - on[idx].sum()) / chars[idx].sum()  # noqa: E731
    rng = np.random.default_rng(seed)
    boot = [effect(rng.integers(0, len(keys), len(keys))) for _ in range(resamples)]
    return {
        "context_turns": len(keys),
        "seeds": len(reports),
        "cer_memory_on": float(on.sum() / chars.sum()),
        "cer_memory_off": float(off.sum() / chars.sum()),
        "off_minus_on": float(effect(np.arange(len(keys)))),
        "off_minus_on_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "seeds_where_on_is_lower": sum(
            r["context_cer_memory_on"] < r["context_cer_memory_off"] for r in reports
        ),
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m for m in METRICS if summary["mean"].get(m) is not None]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, [summary["mean"][m] for m in names], yerr=[summary["std"][m] for m in names])
    ax.set_title(f"S2S evaluation over {summary['seeds']} sampling seeds (mean, std)")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--dataset-dir", type=Path, default=REPO_ROOT / "data/build/dataset")
    parser.add_argument("--output", type=Path, default=OUT / "s2s_seeds.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint_dir
    asr = ckpt / "asr" if (ckpt / "asr" / "model.safetensors").exists() else None
    models = EvalModels.load(ckpt / "s2s", ckpt / "codec", ckpt / "speaker", asr_dir=asr)
    started, reports = time.perf_counter(), []
    for seed in range(args.seeds):
        # Seeds far apart: rendering i of seed s samples with s * 1000 + i.
        protocol = ProtocolConfig(seed=seed * 1000)
        reports.append(evaluate_s2s(models, args.dataset_dir, args.split, protocol=protocol))
        print(f"seed {seed}: " + ", ".join(f"{m} {reports[-1][m]}" for m in METRICS), flush=True)
    values = {m: [r[m] for r in reports if r[m] is not None] for m in METRICS}
    summary = {
        "split": args.split,
        "seeds": args.seeds,
        "turns": reports[0]["turns"],
        "checkpoints": str(ckpt),
        "mean": {m: float(np.mean(v)) if v else None for m, v in values.items()},
        "std": {m: float(np.std(v)) if v else None for m, v in values.items()},
        "per_seed": [{m: r[m] for m in METRICS} for r in reports],
        "memory_ablation": paired_memory_effect(reports),
        "wall_seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    plot(summary, args.output.with_suffix(".png"))
    print(json.dumps({k: summary[k] for k in ("mean", "std", "memory_ablation")}, indent=2))


if __name__ == "__main__":
    main()
