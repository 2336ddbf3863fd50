"""Codec tokens of every utterance, computed once per (dataset build, codec) and cached.

The S2S stage trains on the frozen codec's tokens. Utterances are encoded one by one
(the codec is causal, so an utterance encoded alone is what it would be after silence)
and the timelines are assembled in token space, frame-aligned.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from telugu_s2s.checkpoint import WEIGHTS_FILE, atomic_write, load_pretrained

log = logging.getLogger(__name__)


def file_digest(path: str | Path, length: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


@torch.inference_mode()
def silence_codes(codec) -> torch.Tensor:
    """The codes of one frame of digital silence, (K,)."""
    return codec.encode(torch.zeros(1, 1, codec.frame_size))[0, :, 0].long()


def dataset_fingerprint(dataset_dir: Path, hf_split) -> str:
    """The synthesized dataset's plan hash (stable across `make data` reruns), else HF's fingerprint."""
    info = dataset_dir / "telugu_s2s.json"
    if info.exists():
        plan = json.loads(info.read_text()).get("plan_hash")
        if plan:
            return plan
    return str(getattr(hf_split, "_fingerprint", ""))


class TokenCache:
    """Codes (K, F_i) int16 per row of each split, stored under
    `<dataset_dir>/../tokens/<codec digest>/<split>.pt`."""

    def __init__(self, dataset_dir: str | Path, codec_dir: str | Path):
        self.dataset_dir = Path(dataset_dir)
        self.codec_dir = Path(codec_dir)
        weights = self.codec_dir / WEIGHTS_FILE
        if not weights.exists():
            raise FileNotFoundError(
                f"no codec checkpoint at {self.codec_dir}: train it first (make train-codec)"
            )
        self.codec_digest = file_digest(weights)
        self.root = self.dataset_dir.parent / "tokens" / self.codec_digest
        self._codec = None

    @property
    def codec(self):
        if self._codec is None:
            self._codec = load_pretrained(self.codec_dir).eval()
        return self._codec

    def load(self, split: str, rows_dataset, precompute: bool = True) -> SplitTokens:
        """Codes for the rows of `rows_dataset` (a `_RowsDataset`): all encoded up front and
        saved (`precompute`), or encoded lazily on first use (quick debug runs and tests)."""
        tokens = SplitTokens(self, split, rows_dataset)
        if precompute:
            tokens.encode_all()
        return tokens

    def silence(self) -> torch.Tensor:
        return silence_codes(self.codec)

    @torch.inference_mode()
    def encode(self, clips: list[np.ndarray]) -> list[torch.Tensor]:
        """Encode clips (T_i,) in one padded batch -> codes (K, ceil(T_i / frame)) int16 each."""
        frame = self.codec.frame_size
        frames = [-(-c.shape[0] // frame) for c in clips]  # ceil
        batch = torch.zeros(len(clips), 1, max(frames) * frame)  # (B, 1, T)
        for b, clip in enumerate(clips):
            batch[b, 0, : clip.shape[0]] = torch.from_numpy(clip)
        out = self.codec.encode(batch)  # (B, K, F); causal, so padding never leaks backwards
        return [out[b, :, : frames[b]].to(torch.int16).clone() for b in range(len(clips))]


class SplitTokens:
    """Row index -> codes (K, F_i) for one split, backed by `<tokens>/<split>.pt`."""

    def __init__(self, cache: TokenCache, split: str, rows_dataset):
        self.cache, self.split, self.rows = cache, split, rows_dataset
        self.path = cache.root / f"{split}.pt"
        self.partial_path = cache.root / f"{split}.partial.pt"
        self.fingerprint = dataset_fingerprint(cache.dataset_dir, rows_dataset.rows)
        self.codes: dict[int, torch.Tensor] = {}
        if self.path.exists():
            saved = torch.load(self.path, weights_only=True)
            if saved.get("dataset_fingerprint") == self.fingerprint:
                self.codes = dict(enumerate(saved["codes"]))
            else:
                log.info("token cache %s is stale: re-encoding", self.path)
        elif self.partial_path.exists():  # an interrupted encode_all: go on from there
            saved = torch.load(self.partial_path, weights_only=True)
            if saved.get("dataset_fingerprint") == self.fingerprint:
                self.codes = dict(saved["codes"])

    def __len__(self) -> int:
        return len(self.rows.rows)

    def __getitem__(self, row: int) -> torch.Tensor:
        row = int(row)
        if row not in self.codes:
            self.codes[row] = self.cache.encode([self.rows.audio(row)])[0]
        return self.codes[row]

    def encode_all(self, batch_size: int = 16, save_every: int = 500) -> None:
        """Encode every missing row (similar lengths batched together) and save the split.
        Every `save_every` batches the codes so far are saved, so an interrupted run resumes."""
        missing = [i for i in range(len(self)) if i not in self.codes]
        if not missing:
            return
        durations = np.asarray(self.rows.meta["duration"])[missing]
        order = [missing[i] for i in np.argsort(durations)]
        starts = range(0, len(order), batch_size)
        for n, start in enumerate(tqdm(starts, desc=f"codec tokens ({self.split})", unit="batch")):
            idx = order[start : start + batch_size]
            for i, codes in zip(
                idx, self.cache.encode([self.rows.audio(i) for i in idx]), strict=True
            ):
                self.codes[i] = codes
            if (n + 1) % save_every == 0 and start + batch_size < len(order):
                self._save(self.partial_path, {"codes": dict(self.codes)})
        self._save(self.path, {"codes": [self.codes[i] for i in range(len(self))]})
        self.partial_path.unlink(missing_ok=True)

    def _save(self, path: Path, payload: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"dataset_fingerprint": self.fingerprint, **payload}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))  # never a half-written cache


def main(argv: list[str] | None = None) -> None:
    """Encode the dataset's splits with a codec ahead of training (the S2S stages read them)."""
    import argparse

    from telugu_s2s.data.datasets import _RowsDataset, load_split

    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.data.tokens")
    parser.add_argument("--dataset-dir", default="data/build/dataset")
    parser.add_argument("--codec-dir", default="checkpoints/codec")
    parser.add_argument("--splits", nargs="+", default=["validation", "test", "natural", "train"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(args.threads)
    cache = TokenCache(args.dataset_dir, args.codec_dir)
    for split in args.splits:
        split_rows = load_split(args.dataset_dir, split)
        rows = _RowsDataset(split_rows, cache.codec.sample_rate, seed=0, train=False)
        cache.load(split, rows)
        print(f"{split}: {len(rows.rows)} rows -> {cache.root / split}.pt", flush=True)


if __name__ == "__main__":
    main()
