"""Voice and channel variants of training utterances, encoded by the codec once and cached.

The S2S model's ear (models/code_hearing.py) hears codec codes. Trained on the codes of the
clean corpus it transcribed the held-out user voices at 36% CER after 1,000 steps, while
its training loss kept falling: a voice it never heard gives codes it never saw. Variants
widen what it hears: each picked row is played faster or slower (pitch, formants and
tempo move together: another vocal tract) and passed through a random channel (band limit,
reverb, gain, noise), then encoded. `UtteranceTasks` hears a variant instead of the clean
row with `variant_prob`, with its word timings scaled to the new speed.

    python -m telugu_s2s.data.token_variants --count 15000   # <tokens>/train.variants.pt
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from telugu_s2s.checkpoint import atomic_write
from telugu_s2s.data.augment import ChannelConfig, channel_augment
from telugu_s2s.data.tokens import TokenCache, dataset_fingerprint

log = logging.getLogger(__name__)

# Always a new speed (a wider range than the recognizer's), the channel as for the judge.
VARIANT_CHANNEL = ChannelConfig(speed_prob=1.0, speed=(0.8, 1.25))


def variants_path(cache: TokenCache, split: str) -> Path:
    return cache.root / f"{split}.variants.pt"


def load_variants(
    cache: TokenCache, split: str, rows_dataset
) -> dict[int, tuple[torch.Tensor, float]]:
    """Row -> (codes (K, F) int16, speed) for the rows that have a variant; {} when none
    was encoded, or when the dataset changed since."""
    path = variants_path(cache, split)
    if not path.exists():
        return {}
    saved = torch.load(path, weights_only=True)
    if saved.get("dataset_fingerprint") != dataset_fingerprint(
        cache.dataset_dir, rows_dataset.rows
    ):
        log.warning("token variants %s are stale (another dataset build): not used", path)
        return {}
    return {
        int(r): (c, float(s))
        for r, c, s in zip(saved["rows"], saved["codes"], saved["speed"], strict=True)
    }


def encode_variants(
    cache: TokenCache, split: str, rows_dataset, count: int, seed: int = 0,
    batch_size: int = 16, save_every: int = 100,
) -> Path:  # fmt: skip
    """Encode one variant of `count` random rows of `rows_dataset` (a `_RowsDataset`); saved
    every `save_every` batches, so that an interrupted run goes on where it stopped."""
    path = variants_path(cache, split)
    picks = np.random.default_rng(seed).permutation(len(rows_dataset.rows))[:count].tolist()
    done = load_variants(cache, split, rows_dataset)
    todo = [r for r in picks if r not in done]
    generator = torch.Generator().manual_seed(seed + len(done))
    sample_rate = cache.codec.sample_rate
    for n, start in enumerate(tqdm(range(0, len(todo), batch_size), desc="variants", unit="batch")):
        rows = todo[start : start + batch_size]
        clean = [rows_dataset.audio(r) for r in rows]
        varied = [
            channel_augment(torch.from_numpy(a), sample_rate, generator, VARIANT_CHANNEL).numpy()
            for a in clean
        ]
        for row, a, v, codes in zip(rows, clean, varied, cache.encode(varied), strict=True):
            done[row] = (codes, len(a) / len(v))
        if (n + 1) % save_every == 0 or start + batch_size >= len(todo):
            _save(path, cache, rows_dataset, done)
    return path


def _save(path: Path, cache: TokenCache, rows_dataset, done: dict) -> None:
    rows = sorted(done)
    payload = {
        "dataset_fingerprint": dataset_fingerprint(cache.dataset_dir, rows_dataset.rows),
        "rows": rows, "codes": [done[r][0] for r in rows], "speed": [done[r][1] for r in rows],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def main(argv: list[str] | None = None) -> None:
    import argparse

    from telugu_s2s.data.datasets import _RowsDataset, load_split

    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.data.token_variants")
    parser.add_argument("--dataset-dir", default="data/build/dataset")
    parser.add_argument("--codec-dir", default="checkpoints/codec")
    parser.add_argument("--split", default="train")
    parser.add_argument("--count", type=int, default=15000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    cache = TokenCache(args.dataset_dir, args.codec_dir)
    split_rows = load_split(args.dataset_dir, args.split)
    rows = _RowsDataset(split_rows, cache.codec.sample_rate, seed=0, train=False)
    path = encode_variants(cache, args.split, rows, args.count, args.seed)
    print(f"{args.split}: variants of {min(args.count, len(rows.rows))} rows -> {path}", flush=True)


if __name__ == "__main__":
    main()
