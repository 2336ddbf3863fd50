"""Dialogs as two-channel user/assistant timelines for the S2S stage.

A timeline places each user utterance on channel 0 and the assistant's reply on
channel 1, separated by random pauses. Sometimes the user barges in: the next user
turn starts while the assistant is still talking, and the assistant stops a couple of
frames later (with a short fade), so the model learns when to yield as well as what
to say. Both text streams are laid on the frame grid from the synthesizer's word
timings.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from telugu_s2s.data.datasets import _RowsDataset
from telugu_s2s.data.recall_windows import recall_window
from telugu_s2s.data.text import BLANK, PAD, align_to_frames
from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.labels import STYLES

STYLE_IDS = {"default": 0, **{s: i + 1 for i, s in enumerate(STYLES)}}
TURN_FIELDS = ("topic", "sentiment", "emotion", "turn_index", "has_dependency")


@dataclass
class TimelineConfig:
    frame_rate: float = 12.5
    max_seconds: float = 20.0
    lead_silence: tuple[float, float] = (0.1, 0.5)
    pause_after_user: tuple[float, float] = (0.2, 0.7)
    pause_after_assistant: tuple[float, float] = (0.3, 1.0)
    barge_in_prob: float = 0.15
    barge_in_at: tuple[float, float] = (
        0.3,
        0.8,
    )  # fraction of the reply heard before the user speaks
    # Probability that a training window starts at the dialog's first turn (else a uniform turn):
    # most context-dependent replies recall turn 0-2, which a window must hold to teach the memory.
    start_at_opening: float = 0.0
    # Probability that a training window is built around a recall turn and the turn whose
    # fact it needs, at least `recall_gap_seconds` apart (beyond the attention window: only
    # the context memory can carry the fact); `recall_windows.recall_window` picks the turns.
    recall_window_prob: float = 0.0
    recall_gap_seconds: float = 12.0
    stop_delay_frames: int = 2  # the assistant falls silent this many frames after a barge-in
    # Frames an utterance's text may run past its audio. At one character a frame, half the
    # rows' text is longer than their audio (about 6 characters each): 0 cuts those characters
    # from the targets. An interrupted reply's text still stops with its audio.
    text_spill_frames: int = 0
    fade_ms: float = 10.0
    use_styles: bool = True


class DialogTimelines(_RowsDataset):
    """One item per (dialog, user voice); the assistant voice and style are drawn per item."""

    def __init__(
        self, hf_split, sample_rate: int, cfg: TimelineConfig, seed: int = 0, train: bool = True,
        codes: list[torch.Tensor] | None = None, silence: torch.Tensor | None = None,
    ):  # fmt: skip
        """With `codes` (per-row codec tokens (K, F_i)) and `silence` (K,), every utterance
        starts on a frame boundary and items also carry `user_codes`/`assistant_codes`."""
        super().__init__(hf_split, sample_rate, seed, train)
        self.cfg = cfg
        self.codes, self.silence = codes, silence
        self._depends_on: list | None = None  # per row: the turns a reply needs (lazily read)
        self.frame_size = int(round(sample_rate / cfg.frame_rate))
        self.user_rows: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        self.reply_rows: dict[tuple[str, str], dict[int, dict[str, int]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        for i, (dialog, turn, role, style, speaker) in enumerate(
            zip(
                *(self.meta[c] for c in ("dialog_id", "turn_index", "role", "style", "speaker")),
                strict=True,
            )
        ):
            if role == "user":
                self.user_rows[(dialog, speaker)][turn] = i
            else:
                self.reply_rows[(dialog, speaker)][turn][style] = i
        self.items = sorted(self.user_rows)
        if not self.items:
            raise ValueError("split has no user utterances: cannot build dialog timelines")

    def __len__(self) -> int:
        return len(self.items)

    def _uniform(self, rng: np.random.Generator | None, bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds)) if rng is not None else float(np.mean(bounds))

    def __getitem__(self, index: int) -> dict:
        cfg, sr, rng = self.cfg, self.sample_rate, self.rng(index)
        dialog, user_voice = self.items[index]
        voices = [v for v in ASSISTANT_VOICES if (dialog, v) in self.reply_rows]
        voice = (
            voices[int(rng.integers(len(voices)))]
            if rng is not None
            else voices[index % len(voices)]
        )
        user_turns, replies = self.user_rows[(dialog, user_voice)], self.reply_rows[(dialog, voice)]
        turns = sorted(t for t in user_turns if t in replies)
        first = 0  # the turn the window starts at: a dialog's opening holds what later turns recall
        if rng is not None and len(turns) > 1 and rng.random() >= cfg.start_at_opening:
            first = int(rng.integers(len(turns)))
        style = "default"
        if cfg.use_styles:
            options = sorted({s for t in turns for s in replies[t]})
            style = (
                options[int(rng.integers(len(options)))]
                if rng is not None
                else options[index % len(options)]
            )

        max_len = int(cfg.max_seconds * sr)
        fs = self.frame_size

        def snap(sample: int) -> int:  # token timelines put every utterance on a frame boundary
            return -(-sample // fs) * fs if self.codes is not None else sample

        user_ch, asst_ch = np.zeros(max_len, np.float32), np.zeros(max_len, np.float32)
        num_frames = max_len // self.frame_size
        user_text = np.full(num_frames, BLANK, np.int64)  # (F,)
        asst_text = np.full(num_frames, BLANK, np.int64)  # (F,)
        placed: list[dict] = []
        placed_codes: list[tuple[int, int, int, int, int, int]] = []
        cursor = int(self._uniform(rng, cfg.lead_silence) * sr)
        cache: dict[int, np.ndarray] = {}

        def audio(row: int) -> np.ndarray:
            if row not in cache:  # token timelines need only the length: no decoding
                cache[row] = self.audio(row) if self.codes is None else self.silent(row)
            return cache[row]

        def reply_row(turn: int) -> int:  # a generated dialog voices one style only
            rows = replies[turn]
            return rows.get(style, rows.get("default", next(iter(rows.values()))))

        window = turns[first:]
        if rng is not None and cfg.recall_window_prob > 0 and rng.random() < cfg.recall_window_prob:
            window = self._recall_window(turns, user_turns, reply_row, rng) or window
        for k, turn in enumerate(window):
            u_row = user_turns[turn]
            a_row = reply_row(turn)
            u_wav, a_wav = audio(u_row), audio(a_row)
            barged = placed and placed[-1]["barge_in_at"] is not None
            u_start = (
                placed[-1]["barge_in_at"] if barged else snap(cursor)
            )  # a barge-in starts mid-reply
            a_start = snap(
                u_start + len(u_wav) + int(self._uniform(rng, cfg.pause_after_user) * sr)
            )
            if a_start + len(a_wav) > max_len:
                break  # keep whole turns only
            a_len, next_user = len(a_wav), None
            barge = rng is not None and rng.random() < cfg.barge_in_prob and k + 1 < len(window)
            if barge:
                next_user = snap(a_start + int(self._uniform(rng, cfg.barge_in_at) * len(a_wav)))
                nxt = window[k + 1]  # interrupt only if the interrupting turn fits too
                need = (
                    len(audio(user_turns[nxt]))
                    + int(cfg.pause_after_user[1] * sr)
                    + len(audio(reply_row(nxt)))
                    + 2 * fs
                )
                barge = next_user + need <= max_len
            if barge:
                a_len = min(
                    len(a_wav), next_user - a_start + cfg.stop_delay_frames * self.frame_size
                )
                a_wav = _fade_out(a_wav[:a_len].copy(), int(cfg.fade_ms * sr / 1000))
            user_ch[u_start : u_start + len(u_wav)] += u_wav
            asst_ch[a_start : a_start + a_len] += a_wav
            spill = cfg.text_spill_frames
            self._place_text(user_text, u_row, u_start, len(u_wav), spill)
            self._place_text(asst_text, a_row, a_start, a_len, 0 if barge else spill)
            if self.codes is not None:
                placed_codes.append(
                    (
                        u_row,
                        u_start // fs,
                        -(-len(u_wav) // fs),
                        a_row,
                        a_start // fs,
                        -(-a_len // fs),
                    )
                )
            row = self.rows[int(a_row)]
            placed.append({
                "user_span": (u_start // self.frame_size, (u_start + len(u_wav)) // self.frame_size),
                "assistant_span": (a_start // self.frame_size, (a_start + a_len) // self.frame_size),
                "interrupted": barge, "barge_in_at": next_user if barge else None,
                "topic": row["topic"], "sentiment": row["sentiment"], "emotion": row["emotion"],
                "turn_index": turn, "has_dependency": bool(row["depends_on"]),
                "fact_turn": min(row["depends_on"]) if row["depends_on"] else -1,
                "user_text": self.meta_text(u_row), "assistant_text": self.meta_text(a_row),
            })  # fmt: skip
            cursor = a_start + a_len + int(self._uniform(rng, cfg.pause_after_assistant) * sr)
        if not placed:
            raise ValueError(f"dialog {dialog}: first turn does not fit in {cfg.max_seconds}s")
        end = min(max_len, cursor)
        frames = min(-(-end // self.frame_size), num_frames)  # ceil, within the text arrays
        length = frames * self.frame_size
        item = {
            "user_text": torch.from_numpy(user_text[:frames].copy()),  # (F,)
            "assistant_text": torch.from_numpy(asst_text[:frames].copy()),  # (F,)
            "num_frames": frames,
            "speaker_id": ASSISTANT_VOICES.index(voice),
            "style_id": STYLE_IDS[style],
            "dialog_id": dialog,
            "turns": placed,
        }
        if self.codes is not None:  # token timelines carry codes, audio ones the waveforms
            item["user_codes"], item["assistant_codes"] = self._place_codes(placed_codes, frames)
        else:
            item["user_audio"] = torch.from_numpy(user_ch[:length].copy())[None]  # (1, T)
            item["assistant_audio"] = torch.from_numpy(asst_ch[:length].copy())[None]  # (1, T)
        return item

    def _recall_window(self, turns, user_turns, reply_row, rng) -> list[int] | None:
        """The turns of a window around a recall turn (`recall_windows`), None if none fits."""
        if self._depends_on is None:  # read once, only by runs that use recall windows
            self._depends_on = self.rows["depends_on"]
        cfg, seconds, depends = self.cfg, self.meta["duration"], self._depends_on
        facts = {t: min(depends[reply_row(t)]) for t in turns if depends[reply_row(t)]}
        return recall_window(
            turns, facts,
            user_seconds={t: seconds[user_turns[t]] for t in turns},
            reply_seconds={t: seconds[reply_row(t)] for t in turns},
            pause_seconds=cfg.pause_after_user[1] + cfg.pause_after_assistant[1],
            budget_seconds=cfg.max_seconds - cfg.lead_silence[1],
            min_gap_seconds=cfg.recall_gap_seconds, rng=rng,
        )  # fmt: skip

    def _place_codes(self, placed: list, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Both channels as codec tokens (K, F): silence codes, then each utterance's codes."""
        K = self.silence.shape[0]  # the codebooks in use (the cache may hold more)
        channels = [self.silence.long()[:, None].repeat(1, frames) for _ in range(2)]  # 2 x (K, F)
        for u_row, u_frame, u_len, a_row, a_frame, a_len in placed:
            for channel, row, start, length in (
                (0, u_row, u_frame, u_len),
                (1, a_row, a_frame, a_len),
            ):
                codes = self.codes[int(row)][:K, :length].long()  # (K, n)
                n = min(codes.shape[1], frames - start)
                channels[channel][:, start : start + n] = codes[:, :n]
        return channels[0], channels[1]

    def silent(self, row: int) -> np.ndarray:
        """Zeros as long as the row's audio (its duration at the dataset's rate), for token
        timelines: a build without audio (`data/token_bundle.py`) trains as a full one."""
        return np.zeros(int(round(self.meta["duration"][int(row)] * self.sample_rate)), np.float32)

    def meta_text(self, row: int) -> str:
        return self.rows[int(row)]["text"]

    def _place_text(
        self, stream: np.ndarray, row_index: int, start_sample: int, num_samples: int,
        spill_frames: int = 0,
    ) -> None:  # fmt: skip
        row = self.rows[int(row_index)]
        start, end = (
            start_sample // self.frame_size,
            -(-(start_sample + num_samples) // self.frame_size),
        )
        end = min(end + spill_frames, stream.shape[0])
        stream[start:end] = align_to_frames(
            row["text"],
            row["word_starts_ms"],
            row["word_char_start"],
            end - start,
            self.cfg.frame_rate,
        )


def _fade_out(wav: np.ndarray, fade: int) -> np.ndarray:
    fade = min(fade, wav.shape[0])
    if fade > 0:
        wav[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return wav


def collate_timelines(items: list[dict]) -> dict:
    """Pad to the longest timeline; per-turn fields become (B, N) with a `turn_mask`.

    Audio and codes are optional (the text and single-utterance stages have no audio)."""
    batch_size = len(items)
    frames = max(it["num_frames"] for it in items)
    n_turns = max(len(it["turns"]) for it in items)
    out = {
        "user_text": torch.full((batch_size, frames), PAD, dtype=torch.long),  # (B, F)
        "assistant_text": torch.full((batch_size, frames), PAD, dtype=torch.long),  # (B, F)
        "num_frames": torch.tensor([it["num_frames"] for it in items]),  # (B,)
        "speaker_id": torch.tensor([it["speaker_id"] for it in items]),  # (B,)
        "style_id": torch.tensor([it["style_id"] for it in items]),  # (B,)
        "turn_mask": torch.zeros(batch_size, n_turns, dtype=torch.bool),  # (B, N)
        "user_span": torch.zeros(batch_size, n_turns, 2, dtype=torch.long),  # (B, N, 2) frames
        "assistant_span": torch.zeros(batch_size, n_turns, 2, dtype=torch.long),  # (B, N, 2)
        "interrupted": torch.zeros(batch_size, n_turns, dtype=torch.bool),  # (B, N)
        "topic": torch.zeros(batch_size, n_turns, dtype=torch.long),
        "sentiment": torch.zeros(batch_size, n_turns),
        "emotion": torch.zeros(batch_size, n_turns, dtype=torch.long),
        "turn_index": torch.zeros(batch_size, n_turns, dtype=torch.long),
        "has_dependency": torch.zeros(batch_size, n_turns, dtype=torch.bool),
        # the earlier turn of the same item that holds the fact a recall reply needs, else -1
        "fact_slot": torch.full((batch_size, n_turns), -1, dtype=torch.long),  # (B, N)
        "dialog_id": [it["dialog_id"] for it in items],
        "texts": [[(t["user_text"], t["assistant_text"]) for t in it["turns"]] for it in items],
    }
    if "user_codes" in items[0]:
        for key in ("user_codes", "assistant_codes"):
            codes = torch.stack(
                [it[key][:, -1:].expand(-1, frames).clone() for it in items]
            )  # (B, K, F)
            for b, it in enumerate(items):
                codes[b, :, : it["num_frames"]] = it[key]
            out[key] = codes  # padded with each item's last (silence) frame
    if "user_audio" in items[0]:
        samples = max(it["user_audio"].shape[-1] for it in items)
        for key in ("user_audio", "assistant_audio"):
            out[key] = torch.zeros(batch_size, 1, samples)  # (B, 1, T)
            for b, it in enumerate(items):
                out[key][b, :, : it[key].shape[-1]] = it[key]
    for b, it in enumerate(items):
        out["user_text"][b, : it["num_frames"]] = it["user_text"]
        out["assistant_text"][b, : it["num_frames"]] = it["assistant_text"]
        order = [turn["turn_index"] for turn in it["turns"]]
        for n, turn in enumerate(it["turns"]):
            if turn.get("fact_turn", -1) in order[:n]:
                out["fact_slot"][b, n] = order.index(turn["fact_turn"])
            out["turn_mask"][b, n] = True
            out["user_span"][b, n] = torch.tensor(turn["user_span"])
            out["assistant_span"][b, n] = torch.tensor(turn["assistant_span"])
            out["interrupted"][b, n] = turn["interrupted"]
            for name in TURN_FIELDS:
                out[name][b, n] = turn[name]
    return out
