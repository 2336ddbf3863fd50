"""Dialog text on the frame grid, with no audio: the items of the S2S text stage.

The first stage of the staged recipe (docs/training_s2s.md) teaches the temporal
transformer what to say. Each item lays a window of a generated dialog's turns out as the
duplex timelines do (`timeline.py`): the user's words on the user text stream, a pause, the
reply on the assistant's (monologue) stream, a pause, the next turn. Words are timed at a
speaking rate drawn per item near espeak-ng's (about one character per 80 ms frame), so the
streams look like the aligned ones of the later stages, BLANK where nobody speaks. Replies
are drawn among the turn's valid replies of the item's style (the generator stores them),
so a dialog teaches several wordings.

Items have the keys of `timeline.collate_timelines` without audio or codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from telugu_s2s.data.corpus import Dialog, load_corpus
from telugu_s2s.data.text import BLANK, align_to_frames
from telugu_s2s.data.timeline import STYLE_IDS
from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.labels import EMOTIONS, STYLES, TOPICS

DIALOGS_FILE = "dialogs.jsonl"


@dataclass
class TextDialogConfig:
    frame_rate: float = 12.5
    max_frames: int = 375  # 30 s: three times the tiny model's attention window
    frames_per_char: tuple[float, float] = (1.0, 1.3)  # espeak-ng speaks ~12 chars/s
    lead_frames: tuple[int, int] = (1, 6)
    pause_after_user: tuple[float, float] = (0.2, 0.7)  # seconds, as TimelineConfig
    pause_after_assistant: tuple[float, float] = (0.3, 1.0)
    start_at_opening: float = 0.5  # else the window starts at a uniform turn
    vary_replies: bool = True  # draw among the turn's valid replies of the style


def load_dialogs(dataset_dir: str | Path, split: str) -> list[Dialog]:
    """The dialogs of one split from the dataset's `dialogs.jsonl` (written by the synth build)."""
    path = Path(dataset_dir) / DIALOGS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no {DIALOGS_FILE} in {dataset_dir}: build the dataset with `make data`"
        )
    dialogs = [d for d in load_corpus(path) if d.split == split]
    if not dialogs:
        raise ValueError(f"{path} holds no dialog of split {split!r}")
    return dialogs


def word_timings(text: str, frames_per_char: float, frame_rate: float) -> tuple[list, list]:
    """Synthetic word timings (start ms, start char) for `text` spoken at a steady rate."""
    starts = [i for i, ch in enumerate(text) if ch != " " and (i == 0 or text[i - 1] == " ")]
    ms = [int(round(c * frames_per_char * 1000.0 / frame_rate)) for c in starts]
    return ms, starts


class TextDialogs(Dataset):
    """One item per dialog: a window of its turns as aligned user and assistant text streams."""

    def __init__(
        self, dialogs: list[Dialog], cfg: TextDialogConfig, seed: int = 0, train: bool = True
    ):
        if not dialogs:
            raise ValueError("no dialogs: cannot build text timelines")
        self.dialogs, self.cfg, self.seed, self.train = dialogs, cfg, seed, train
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dialogs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @staticmethod
    def _uniform(rng: np.random.Generator | None, bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds)) if rng is not None else float(np.mean(bounds))

    def _reply(self, turn, style: str, rng) -> str:
        options = (turn.valid_replies or {}).get(style) if self.cfg.vary_replies else None
        if rng is not None and options:
            return options[int(rng.integers(len(options)))]
        return turn.reply(style)

    def __getitem__(self, index: int) -> dict:
        return self.window(index)

    def window(self, index: int, first_turn: int | None = None) -> dict:
        """The item of dialog `index`; `first_turn` (evaluation only) starts the window at that
        turn instead of the opening."""
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        dialog = self.dialogs[index]
        # A style whose reply some turn lacks would fall back to the default reply.
        styles = [s for s in STYLES if all(t.formal and t.casual for t in dialog.turns)]
        styles = styles or ["default"]
        if rng is not None:
            style = styles[int(rng.integers(len(styles)))]
            voice = int(rng.integers(len(ASSISTANT_VOICES)))
        else:  # evaluation: the voiced style, a fixed voice
            style = dialog.style if dialog.style in styles else styles[0]
            voice = index % len(ASSISTANT_VOICES)
        first = first_turn or 0
        if (
            first_turn is None
            and rng is not None
            and len(dialog.turns) > 1
            and (rng.random() >= cfg.start_at_opening)
        ):
            first = int(rng.integers(len(dialog.turns)))
        rate = self._uniform(rng, cfg.frames_per_char)
        fps = cfg.frame_rate
        user_text = np.full(cfg.max_frames, BLANK, np.int64)  # (F,)
        asst_text = np.full(cfg.max_frames, BLANK, np.int64)  # (F,)
        lead = (
            int(rng.integers(cfg.lead_frames[0], cfg.lead_frames[1] + 1)) if rng is not None else 2
        )
        cursor, end, placed = lead, 0, []
        for turn in dialog.turns[first:]:
            reply = self._reply(turn, style, rng)
            u_len = int(np.ceil(len(turn.user) * rate)) + 1
            a_start = cursor + u_len + int(round(self._uniform(rng, cfg.pause_after_user) * fps))
            a_len = int(np.ceil(len(reply) * rate)) + 1
            if a_start + a_len > cfg.max_frames:
                break  # whole turns only
            for stream, text, start, length in (
                (user_text, turn.user, cursor, u_len),
                (asst_text, reply, a_start, a_len),
            ):
                ms, chars = word_timings(text, rate, fps)
                stream[start : start + length] = align_to_frames(text, ms, chars, length, fps)
            placed.append({
                "user_span": (cursor, cursor + u_len), "assistant_span": (a_start, a_start + a_len),
                "interrupted": False, "topic": TOPICS.index(turn.topic),
                "sentiment": turn.sentiment, "emotion": EMOTIONS.index(turn.emotion),
                "turn_index": turn.index, "has_dependency": bool(turn.depends_on),
                "user_text": turn.user, "assistant_text": reply,
            })  # fmt: skip
            end = a_start + a_len
            cursor = end + int(round(self._uniform(rng, cfg.pause_after_assistant) * fps))
        if not placed:
            raise ValueError(
                f"dialog {dialog.dialog_id}: its first turn does not fit in {cfg.max_frames} frames"
            )
        frames = min(cfg.max_frames, end + 2)  # two silent frames: the reply's end is a target
        return {
            "user_text": torch.from_numpy(user_text[:frames].copy()),  # (F,)
            "assistant_text": torch.from_numpy(asst_text[:frames].copy()),  # (F,)
            "num_frames": frames,
            "speaker_id": voice,
            "style_id": STYLE_IDS[style],
            "dialog_id": dialog.dialog_id,
            "turns": placed,
        }
