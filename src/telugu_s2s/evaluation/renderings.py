"""What each rendering of the S2S evaluation plays: its voice, style, user codes and turn
windows (the protocol is in `evaluation/s2s.py`'s docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from telugu_s2s.data.timeline import DialogTimelines
from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.evaluation.sessions import encode_clip

STYLE_PAIR = ("formal", "casual")


@dataclass
class ProtocolConfig:
    lead_frames: int = 4  # silence before the first turn (the timelines' mean lead-in, 0.3 s)
    pause_frames: int = 6  # user -> assistant pause (their mean, 0.45 s)
    margin_frames: int = 12  # generated past the reference reply's length (1 s)
    items_per_batch: int = 8  # renderings stepped together, up to 3 sessions each
    ablate_memory: bool = True  # run the memory_off sessions
    compare_styles: bool = True  # run the other_style sessions
    min_speech_frames: int = 6  # a reply whose non-silent part is shorter is embedded whole
    max_turns: int | None = None  # only the first turns of each dialog (quick checks); None = all
    temperature: float = 0.35  # the server's sampling; 0 = greedy
    top_k: int = 50
    seed: int = 0  # rendering i samples with seed + i
    speaker_guidance: float = 1.0  # classifier-free guidance on the speaker, as served (1 = off)


@dataclass
class TurnPlan:
    turn: int
    user_row: int
    replies: dict[str, int]  # style -> reply row in the session's voice
    user_span: tuple[int, int]  # steps of the user's utterance
    reply_span: tuple[int, int]  # steps of free generation


@dataclass
class ItemPlan:
    dialog: str
    user_voice: str
    voice: str
    style: str
    other_style: str | None
    user_codes: Tensor  # (K, T)
    silent: Tensor  # (T,) bool
    turns: list[TurnPlan]

    def reply_row(self, turn: TurnPlan, style: str | None = None) -> int:
        """The reply row in `style` (else the default one; a generated dialog has one style)."""
        rows = turn.replies
        return rows.get(style or self.style, rows.get("default", next(iter(rows.values()))))

    def reference(self, turn: TurnPlan, ds: DialogTimelines, style: str | None = None) -> str:
        return ds.meta_text(self.reply_row(turn, style))

    def turn_codes(self) -> dict[int, Tensor]:
        """turn -> its user utterance's codes (K, n), as laid out here."""
        return {t.turn: self.user_codes[:, t.user_span[0] : t.user_span[1]] for t in self.turns}

    def session_kinds(self, protocol: ProtocolConfig) -> dict[str, tuple[str, bool]]:
        """The sessions run on this rendering: name -> (style, memory on)."""
        kinds = {"main": (self.style, True)}
        if protocol.compare_styles and self.other_style:
            kinds["other_style"] = (self.other_style, True)
        if protocol.ablate_memory:
            kinds["memory_off"] = (self.style, False)
        return kinds


def plan_item(
    ds: DialogTimelines,
    index: int,
    codec: nn.Module,
    silence: Tensor,
    protocol: ProtocolConfig,
    min_free: dict[int, int] | None = None,
    encoded: dict[int, Tensor] | None = None,
) -> ItemPlan:
    """The timeline of rendering `index`: its voice, style, user codes and turn windows.
    `min_free`: turn -> the least frames of free generation (a planned reply's length);
    `encoded`: turn -> its user codes, from an earlier plan of this rendering (`turn_codes`)."""
    dialog, user_voice = ds.items[index]
    voices = [v for v in ASSISTANT_VOICES if (dialog, v) in ds.reply_rows]
    voice = voices[index % len(voices)]
    replies, users = ds.reply_rows[(dialog, voice)], ds.user_rows[(dialog, user_voice)]
    variants = [s for s in STYLE_PAIR if any(s in replies[t] for t in replies)]
    style = variants[(index // len(voices)) % len(variants)] if variants else "default"
    other = next((s for s in variants if s != style), None)
    frame = codec.frame_size / ds.sample_rate  # seconds per frame
    chunks = [silence[:, None].repeat(1, protocol.lead_frames)]  # K x (K, n)
    silent, turns, t = [True] * protocol.lead_frames, [], protocol.lead_frames
    for turn in sorted(tr for tr in users if tr in replies)[: protocol.max_turns]:
        user = (encoded or {}).get(turn)
        if user is None:
            user = encode_clip(codec, ds.audio(users[turn]))  # (K, n)
        longest = max(ds.meta["duration"][row] for row in replies[turn].values())
        free = max(math.ceil(longest / frame), (min_free or {}).get(turn, 0))
        free += protocol.margin_frames
        n, start = user.shape[1], t + user.shape[1] + protocol.pause_frames
        turns.append(
            TurnPlan(turn, users[turn], dict(replies[turn]), (t, t + n), (start, start + free))
        )
        chunks += [user, silence[:, None].repeat(1, protocol.pause_frames + free)]
        silent += [True] * (n + protocol.pause_frames) + [False] * free
        t = start + free
    codes = torch.cat(chunks, dim=1)  # (K, T)
    return ItemPlan(dialog, user_voice, voice, style, other, codes, torch.tensor(silent), turns)
