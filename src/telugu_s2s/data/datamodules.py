"""One LightningDataModule for all three stages, over the same saved dataset.

task=codec    random audio crops                      {"audio": (B, 1, T)}
task=speaker  labelled utterance crops + augmentation  {"audio", "length", "speaker_id"}
task=s2s      two-channel dialog timelines            see `timeline.collate_timelines`
              (with `codec_dir`, also frame-aligned codec tokens per channel)
task=asr      whole transcribed utterances + channel augmentation  {"audio", "length",
              "text_ids", "text_length", "text"}
task=s2s_text          the staged S2S recipe's text stage: dialog text on the frame grid
                       from `dialogs.jsonl`, no audio (`text_dialogs.TextDialogs`)
task=s2s_listen_speak  its second stage: one utterance per item on codec tokens, listened
                       to or spoken (`utterance_tasks.UtteranceTasks`; needs `codec_dir`)
The three S2S tasks share `timeline.collate_timelines`.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from telugu_s2s.data.datasets import (
    CodecCrops,
    SpeakerUtterances,
    TranscribedUtterances,
    collate_utterances,
    load_split,
    speaker_names_of,
)
from telugu_s2s.data.text_dialogs import TextDialogConfig, TextDialogs, load_dialogs
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig, collate_timelines
from telugu_s2s.data.token_variants import load_variants
from telugu_s2s.data.tokens import TokenCache
from telugu_s2s.data.utterance_tasks import UtteranceTaskConfig, UtteranceTasks
from telugu_s2s.data.voice_variety import with_voice_variety

log = logging.getLogger(__name__)

TASKS = ("codec", "speaker", "s2s", "asr", "s2s_text", "s2s_listen_speak")
S2S_TASKS = ("s2s", "s2s_text", "s2s_listen_speak")


class TeluguDataModule(L.LightningDataModule):
    def __init__(
        self,
        task: str,
        dataset_dir: str,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        crop_seconds: float = 1.0,
        seed: int = 0,
        augment: bool = True,
        timeline: dict | None = None,
        codec_dir: str | None = None,
        num_codebooks: int | None = None,
        precompute_tokens: bool = True,
        limit_train_items: int | None = None,
        limit_eval_items: int | None = None,
        max_seconds: float = 12.0,
        bucket_by_length: bool = False,
        text_dialogs: dict | None = None,  # task=s2s_text: TextDialogConfig fields
        utterance_tasks: dict | None = None,  # task=s2s_listen_speak: UtteranceTaskConfig fields
        voice_variety_dir: str | list[str] | None = None,  # asr, codec: rows in random voices
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if voice_variety_dir and task not in ("asr", "codec"):
            raise ValueError(f"voice_variety_dir feeds task=asr or codec, not {task!r}")
        self.save_hyperparameters()
        self.task = task
        self.datasets: dict[str, Dataset] = {}
        self.speaker_names: list[str] = []

    def _make(self, split: str, train: bool) -> Dataset:
        hp = self.hparams
        limit = hp.limit_train_items if train else hp.limit_eval_items
        if self.task == "s2s_text":  # text only: the dialogs, no rendered rows
            cfg = TextDialogConfig(**(hp.text_dialogs or {}))
            ds = TextDialogs(load_dialogs(hp.dataset_dir, split), cfg, hp.seed, train)
            return torch.utils.data.Subset(ds, range(limit)) if limit and limit < len(ds) else ds
        rows = load_split(hp.dataset_dir, split)
        if train and hp.voice_variety_dir:
            rows = with_voice_variety(rows, hp.voice_variety_dir)
        if self.task == "codec":
            ds = CodecCrops(rows, hp.sample_rate, hp.crop_seconds, hp.seed, train)
        elif self.task == "speaker":
            augment = None
            if hp.augment and train:
                from telugu_s2s.data.augment import augment
            ds = SpeakerUtterances(
                rows, hp.sample_rate, hp.crop_seconds, self.speaker_names, hp.seed, train, augment
            )
        elif self.task == "asr":
            augment = None
            if hp.augment and train:
                from functools import partial

                from telugu_s2s.data.augment import channel_augment

                augment = partial(channel_augment, sample_rate=hp.sample_rate)
            ds = TranscribedUtterances(
                rows, hp.sample_rate, hp.max_seconds, hp.seed, train, augment=augment
            )
        elif self.task == "s2s_listen_speak":
            cfg = UtteranceTaskConfig(**(hp.utterance_tasks or {}))
            ds = UtteranceTasks(rows, hp.sample_rate, cfg, hp.seed, train)
            if not hp.codec_dir:
                raise ValueError("task=s2s_listen_speak trains on codec tokens: set codec_dir")
            cache = self._attach_tokens(ds, split)
            if train and cfg.variant_prob > 0:
                ds.variants = load_variants(cache, split, ds)
                log.info("%s: %d rows have a voice-and-channel variant", split, len(ds.variants))
        else:
            ds = DialogTimelines(
                rows, hp.sample_rate, TimelineConfig(**(hp.timeline or {})), hp.seed, train
            )
            if hp.codec_dir:  # token timelines for the S2S model (codes cached per codec)
                self._attach_tokens(ds, split)
        if limit is not None and limit < len(ds):
            ds = torch.utils.data.Subset(ds, range(limit))
        return ds

    def _attach_tokens(self, ds: Dataset, split: str) -> TokenCache:
        """Give a rows dataset its codec tokens (cached per codec) and the silence codes;
        returns the cache."""
        hp = self.hparams
        cache = TokenCache(hp.dataset_dir, hp.codec_dir)
        silence = cache.silence()[: hp.num_codebooks]  # the model may use the first K only
        ds.codes, ds.silence = cache.load(split, ds, hp.precompute_tokens), silence
        return cache

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.task == "speaker":
            self.speaker_names = speaker_names_of(load_split(self.hparams.dataset_dir, "train"))
        self.datasets["train"] = self._make("train", train=True)
        for split in ("validation", "test"):
            self.datasets[split] = self._make(split, train=False)

    @property
    def collate_fn(self):
        if self.task in S2S_TASKS:
            return collate_timelines
        return {"asr": collate_utterances}.get(self.task, default_collate)

    def _loader(self, split: str, train: bool) -> DataLoader:
        hp = self.hparams
        # Under DDP Lightning shards a plain sampler; the length buckets are single-process.
        single = self.trainer is None or self.trainer.world_size == 1
        if train and hp.bucket_by_length and single:
            ds = self.datasets[split]
            sampler = LengthBuckets(_durations(ds), hp.batch_size, hp.seed)
            return DataLoader(
                ds, batch_sampler=sampler, num_workers=hp.num_workers,
                persistent_workers=hp.num_workers > 0, collate_fn=self.collate_fn,
            )  # fmt: skip
        return DataLoader(
            self.datasets[split],
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train,
            drop_last=train and len(self.datasets[split]) > hp.batch_size,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(hp.seed) if train else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)


def _durations(ds: Dataset) -> list[float]:
    if isinstance(ds, torch.utils.data.Subset):
        return [_durations(ds.dataset)[i] for i in ds.indices]
    return ds.durations


class LengthBuckets(torch.utils.data.Sampler):
    """Batches of similar durations (less padding): shuffle, sort each pool of 50 batches by
    duration, cut into batches, shuffle the batches. A new order every epoch, seeded."""

    def __init__(self, durations: list[float], batch_size: int, seed: int = 0, pool: int = 50):
        self.durations, self.batch_size, self.seed, self.pool = durations, batch_size, seed, pool
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.durations) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.durations), generator=g).tolist()
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.durations.__getitem__)
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        batches = [b for b in batches if len(b) == self.batch_size]
        for i in torch.randperm(len(batches), generator=g).tolist():
            yield batches[i]
