"""Single-utterance tasks on codec tokens: the listen-and-speak stage of the staged recipe.

Every row of the dataset (any voice) becomes one short timeline on the frame grid:

- **listen**: the utterance's codes on the user channel and its aligned text on the user
  text stream (the user-transcript head learns to transcribe, `user_text_delay` frames
  late); the assistant stays silent (silence codes, BLANK text). The utterance's topic,
  sentiment and emotion label the one user turn. User rows are listened to; in training an
  assistant-voice row is listened to with `listen_assistant_prob`, so the user stream hears
  the four assistant voices too (with no turn labels: a row's sentiment and emotion are
  those of the user's utterance).
- **speak**: an assistant row's codes on the assistant channel, its monologue text aligned
  on the assistant text stream, conditioned on that voice (`speaker_id`) and the row's
  style; the user channel is silent. There is no user turn.

Tokens come from the same cache as the duplex timelines (`tokens.TokenCache`), so no audio
is decoded. Items have the keys of `timeline.collate_timelines` without audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from telugu_s2s.data.datasets import _RowsDataset
from telugu_s2s.data.text import BLANK, align_to_frames
from telugu_s2s.data.timeline import STYLE_IDS
from telugu_s2s.data.voices import ASSISTANT_VOICES

TEXT_COLUMNS = ("text", "word_starts_ms", "word_char_start", "topic", "sentiment", "emotion")


@dataclass
class UtteranceTaskConfig:
    frame_rate: float = 12.5
    lead_frames: tuple[int, int] = (1, 4)  # silence before the utterance
    # Silence after it: the delayed streams (user text, acoustic codebooks) end this late.
    tail_frames: int = 4
    # The text may run this many frames past the audio (one character a frame is slower than
    # espeak-ng speaks: half the rows' text outlasts their audio by about 6 characters).
    text_spill_frames: int = 12
    listen_assistant_prob: float = 0.25  # training only: an assistant row becomes a listen task
    max_frames: int = 200  # 16 s: longer rows are cut
    # Training only: a listened row is heard as its voice-and-channel variant (when the
    # datamodule found `data.token_variants`' cache) with this probability.
    variant_prob: float = 0.0


class UtteranceTasks(_RowsDataset):
    """One item per row: a listen task for user rows, a speak task for assistant rows."""

    def __init__(
        self, hf_split, sample_rate: int, cfg: UtteranceTaskConfig, seed: int = 0,
        train: bool = True, codes=None, silence: torch.Tensor | None = None,
    ):  # fmt: skip
        super().__init__(hf_split, sample_rate, seed, train)
        if len(hf_split) == 0:
            raise ValueError("split has no rows: cannot build utterance tasks")
        self.cfg = cfg
        self.codes, self.silence = codes, silence  # set by the datamodule from the token cache
        self.variants: dict[int, tuple[torch.Tensor, float]] = {}  # row -> (codes, speed)
        self.columns = {c: hf_split[c] for c in TEXT_COLUMNS}

    def __len__(self) -> int:
        return len(self.rows)

    def task_of(self, index: int, rng: np.random.Generator | None) -> str:
        role = self.meta["role"][index]
        if role != "assistant" or self.meta["speaker"][index] not in ASSISTANT_VOICES:
            return "listen"
        if rng is not None and rng.random() < self.cfg.listen_assistant_prob:
            return "listen"
        return "speak"

    def __getitem__(self, index: int) -> dict:
        if self.codes is None or self.silence is None:
            raise ValueError(
                "utterance tasks train on codec tokens: set the datamodule's codec_dir"
            )
        cfg, rng, col = self.cfg, self.rng(index), self.columns
        task = self.task_of(index, rng)
        K = self.silence.shape[0]
        lead = (
            int(rng.integers(cfg.lead_frames[0], cfg.lead_frames[1] + 1)) if rng is not None else 2
        )
        room = cfg.max_frames - lead - cfg.tail_frames - cfg.text_spill_frames
        codes, speed = self.codes[index], 1.0
        heard_variant = (
            task == "listen" and rng is not None and index in self.variants
            and rng.random() < cfg.variant_prob
        )  # fmt: skip
        if heard_variant:
            codes, speed = self.variants[index]
        codes = codes[:K, :room].long()  # (K, n)
        n = codes.shape[1]
        aligned = align_to_frames(
            col["text"][index], [ms / speed for ms in col["word_starts_ms"][index]],
            col["word_char_start"][index], n + cfg.text_spill_frames, cfg.frame_rate,
        )  # fmt: skip
        said = np.flatnonzero(aligned != BLANK)
        span = max(n, int(said[-1]) + 1 if said.size else 0)  # the audio, or its text if longer
        frames = lead + span + cfg.tail_frames
        channels = [self.silence.long()[:, None].repeat(1, frames) for _ in range(2)]  # 2 x (K, F)
        streams = [torch.full((frames,), BLANK, dtype=torch.long) for _ in range(2)]  # 2 x (F,)
        channel = 0 if task == "listen" else 1
        channels[channel][:, lead : lead + n] = codes
        streams[channel][lead : lead + span] = torch.from_numpy(aligned[:span])
        speaker = self.meta["speaker"][index]
        if task == "speak":
            voice, style = ASSISTANT_VOICES.index(speaker), self.meta["style"][index]
        else:  # the assistant only listens: any voice, the default style
            voices = len(ASSISTANT_VOICES)
            voice = int(rng.integers(voices)) if rng is not None else index % voices
            style = "default"
        turns = []
        if task == "listen" and self.meta["role"][index] == "user":  # the labels are the user's
            turns.append({
                "user_span": (lead, lead + n), "assistant_span": (lead + n, lead + n),
                "interrupted": False, "topic": col["topic"][index],
                "sentiment": col["sentiment"][index], "emotion": col["emotion"][index],
                "turn_index": self.meta["turn_index"][index], "has_dependency": False,
                "user_text": col["text"][index], "assistant_text": "",
            })  # fmt: skip
        return {
            "user_codes": channels[0],  # (K, F)
            "assistant_codes": channels[1],  # (K, F)
            "user_text": streams[0],  # (F,)
            "assistant_text": streams[1],  # (F,)
            "num_frames": frames,
            "speaker_id": voice,
            "style_id": STYLE_IDS.get(style, 0),
            "dialog_id": self.meta["dialog_id"][index],
            "task": task,
            "turns": turns,
        }
