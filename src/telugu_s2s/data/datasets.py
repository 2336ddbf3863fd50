"""Torch datasets over the HF dataset that `telugu_s2s.data.synth` (or a recipe) writes.

One on-disk schema, three views: random audio crops (codec), labelled utterances
(speaker) and two-channel dialog timelines (s2s, in `timeline.py`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from telugu_s2s.data.voices import ASSISTANT_VOICES

METADATA_COLUMNS = (
    "id", "dialog_id", "turn_index", "role", "style", "speaker", "duration", "sampling_rate",
)  # fmt: skip


def load_split(dataset_dir: str | Path, split: str):
    """One split of the saved DatasetDict, with a readable error when it is missing."""
    import datasets as hfd

    path = Path(dataset_dir)
    if not (path / "dataset_dict.json").exists():
        raise FileNotFoundError(
            f"no dataset at {path}: build it with `make data` "
            "(python -m telugu_s2s.data.synth) or point data.dataset_dir at a recipe's output"
        )
    dd = hfd.load_from_disk(str(path))
    if split not in dd:
        raise KeyError(f"split {split!r} not in {path} (has {sorted(dd)})")
    return dd[split]


def decode_audio(audio: dict, sample_rate: int, source_rate: int | None = None) -> np.ndarray:
    """(T,) float32 mono at `sample_rate` from an `{"bytes", "path"}` audio cell."""
    import soundfile as sf  # here: token-only training (data/token_bundle.py) needs neither
    import soxr

    if audio.get("bytes") is not None:
        wav, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="float32", always_2d=True)
    elif audio.get("path"):
        wav, sr = sf.read(audio["path"], dtype="float32", always_2d=True)
    else:
        raise ValueError("audio cell has neither bytes nor path")
    wav = wav.mean(axis=1)  # (T,)
    sr = source_rate or sr
    if sr != sample_rate:
        wav = soxr.resample(wav, sr, sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def crop_or_pad(wav: np.ndarray, length: int, rng: np.random.Generator | None) -> np.ndarray:
    """A `length`-sample window: random start when `rng` is given, else from the start."""
    if wav.shape[0] > length:
        start = int(rng.integers(0, wav.shape[0] - length + 1)) if rng is not None else 0
        return wav[start : start + length]
    return np.pad(wav, (0, length - wav.shape[0]))


class _RowsDataset(Dataset):
    """Shared plumbing: the HF split, its light metadata columns, and audio decoding."""

    def __init__(self, hf_split, sample_rate: int, seed: int, train: bool):
        self.rows = hf_split
        self.meta = {c: hf_split[c] for c in METADATA_COLUMNS if c in hf_split.column_names}
        self.sample_rate = sample_rate
        self.seed = seed
        self.train = train
        self.epoch = 0

    def audio(self, index: int) -> np.ndarray:
        row = self.rows[int(index)]
        return decode_audio(row["audio"], self.sample_rate, row.get("sampling_rate"))

    def rng(self, index: int) -> np.random.Generator | None:
        """Random crops for training (new each epoch), deterministic ones for evaluation."""
        if not self.train:
            return None
        return np.random.default_rng([self.seed, self.epoch, index])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class CodecCrops(_RowsDataset):
    """Random fixed-length crops of any utterance: {"audio": (1, T)}."""

    def __init__(
        self, hf_split, sample_rate: int, crop_seconds: float, seed: int = 0, train: bool = True
    ):
        super().__init__(hf_split, sample_rate, seed, train)
        self.crop = int(round(crop_seconds * sample_rate))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        wav = crop_or_pad(self.audio(index), self.crop, self.rng(index))
        return {"audio": torch.from_numpy(wav)[None]}  # (1, T)


class SpeakerUtterances(_RowsDataset):
    """Labelled utterance crops: {"audio": (1, T), "length": int, "speaker_id": int}.

    `speaker_names` fixes the label order (assistant voices first) so that labels agree
    across splits even when a split lacks some voices.
    """

    def __init__(
        self, hf_split, sample_rate: int, crop_seconds: float, speaker_names: list[str],
        seed: int = 0, train: bool = True, augment=None,
    ):  # fmt: skip
        super().__init__(hf_split, sample_rate, seed, train)
        self.crop = int(round(crop_seconds * sample_rate))
        self.speaker_names = list(speaker_names)
        index = {name: i for i, name in enumerate(self.speaker_names)}
        self.keep = [i for i, s in enumerate(self.meta["speaker"]) if s in index]
        self.labels = [index[self.meta["speaker"][i]] for i in self.keep]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, index: int) -> dict:
        rng = self.rng(index)
        wav = self.audio(self.keep[index])
        if self.augment is not None and rng is not None:  # augment(audio (T,), torch.Generator)
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            wav = self.augment(torch.from_numpy(wav), generator).numpy()
        length = min(wav.shape[0], self.crop)
        wav = crop_or_pad(wav, self.crop, rng)
        return {
            "audio": torch.from_numpy(wav)[None],
            "length": length,
            "speaker_id": self.labels[index],
        }


def speaker_names_of(hf_split) -> list[str]:
    """Every voice in a split, the four assistant voices first (fixed label order)."""
    others = sorted(set(hf_split["speaker"]) - set(ASSISTANT_VOICES))
    return list(ASSISTANT_VOICES) + others


class TranscribedUtterances(_RowsDataset):
    """Whole utterances with their text, for the recognizer:
    {"audio": (T,), "length": int, "text_ids": (L,), "text": str}.

    Training items pass through `augment(audio (T,), generator=...) -> (T',)` (channel
    augmentation; the length may change) and are cut to `max_seconds`."""

    def __init__(
        self, hf_split, sample_rate: int, max_seconds: float = 12.0, seed: int = 0,
        train: bool = True, augment=None,
    ):  # fmt: skip
        super().__init__(hf_split, sample_rate, seed, train)
        from telugu_s2s.data.text import TextTokenizer

        self.tokenizer = TextTokenizer()
        self.texts = hf_split["text"]
        durations = self.meta.get("duration") or [0.0] * len(self.texts)
        self.keep = [i for i, d in enumerate(durations) if d <= max_seconds]
        self.durations = [durations[i] for i in self.keep]  # for length-bucketed batches
        self.max_samples = int(max_seconds * sample_rate)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, index: int) -> dict:
        row = self.keep[index]
        wav = torch.from_numpy(self.audio(row))
        rng = self.rng(index)
        if self.augment is not None and rng is not None:
            wav = self.augment(
                wav, generator=torch.Generator().manual_seed(int(rng.integers(2**62)))
            )
        wav = wav[: self.max_samples]
        text = self.texts[row]
        ids = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
        return {"audio": wav, "length": wav.shape[0], "text_ids": ids, "text": text}


def collate_utterances(items: list[dict]) -> dict:
    """Pad audio to (B, T) and texts to (B, L), with their lengths."""
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "audio": pad([it["audio"] for it in items], batch_first=True),  # (B, T)
        "length": torch.tensor([it["length"] for it in items]),
        "text_ids": pad([it["text_ids"] for it in items], batch_first=True),  # (B, L)
        "text_length": torch.tensor([it["text_ids"].shape[0] for it in items]),
        "text": [it["text"] for it in items],
    }
