"""Evaluate an exported codec on a dataset split (held-out voices included).

    python -m telugu_s2s.eval_codec --checkpoint checkpoints/codec --split test
    python -m telugu_s2s.eval_codec --checkpoint checkpoints/codec --max-clips 120 --codebooks 8 4 2

Prints (and with --json writes) mel distance, SI-SNR, STOI, PESQ, codebook usage and
perplexity and the bitrate for each number of codebooks, plus the mel distance of a
freshly initialized model of the same config (seeded) for the "vs initialization" figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.metrics.codec import (
    ReconstructionScorer,
    evaluate_tokenizer,
    fresh_like,
    load_clips,
    summarize,
)
from telugu_s2s.paths import REPO_ROOT


def evaluate(
    checkpoint: str | Path,
    dataset_dir: str | Path,
    split: str = "test",
    max_clips: int | None = None,
    codebooks: list[int] | None = None,
    init_seed: int | None = 1234,
) -> dict:
    codec = load_pretrained(checkpoint)
    clips = load_clips(dataset_dir, split, max_clips, codec.sample_rate)
    scorer = ReconstructionScorer(codec.sample_rate)
    report: dict = {
        "checkpoint": str(checkpoint),
        "split": split,
        "clips": len(clips),
        "hours": sum(c.audio.shape[0] for c in clips) / codec.sample_rate / 3600,
        "speakers": sorted({c.speaker for c in clips}),
        "codec": {},
    }
    for k in codebooks or [codec.num_codebooks]:
        report["codec"][str(k)] = summarize(evaluate_tokenizer(codec, clips, k, scorer))
    if init_seed is not None:
        fresh = fresh_like(codec, init_seed)
        mel_only = ReconstructionScorer(codec.sample_rate, with_stoi=False, with_pesq=False)
        report["init_mel_distance"] = evaluate_tokenizer(fresh, clips, scorer=mel_only)[
            "mel_distance"
        ]
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=str(REPO_ROOT / "checkpoints" / "codec"))
    parser.add_argument("--dataset-dir", default=str(REPO_ROOT / "data" / "build" / "dataset"))
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--max-clips", type=int, default=None, help="evenly spaced subset (default: all)"
    )
    parser.add_argument(
        "--codebooks", type=int, nargs="+", default=None, help="numbers of codebooks to decode"
    )
    parser.add_argument(
        "--init-seed", type=int, default=1234, help="seed of the fresh model (-1: skip)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = evaluate(
        args.checkpoint,
        args.dataset_dir,
        args.split,
        args.max_clips,
        args.codebooks,
        None if args.init_seed < 0 else args.init_seed,
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
