"""The S2S model's streams outside the network: the delayed code layout and the teacher
forcing shift (alignment: `models.s2s`), the outputs of its offline (`forward`, `targets`)
and streaming (`step`) passes, the tokens a caller may force, and the streaming state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from telugu_s2s.modules.streaming import StreamingState

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index
Sampler = Callable[
    [Tensor, int], Tensor
]  # (logits (B, N), stream: 0 text, 1 + k codebook k) -> (B,)


def delay_codes(codes: Tensor, delay: int, fill: int) -> Tensor:
    """codes (B, K, F) -> delayed layout (B, K, F): codebooks 1.. move `delay` frames later."""
    if delay == 0:
        return codes
    acoustic = F.pad(codes[:, 1:, :-delay], (delay, 0), value=fill)  # (B, K-1, F)
    return torch.cat([codes[:, :1], acoustic], dim=1)


def undelay_codes(delayed: Tensor, delay: int, fill: int) -> Tensor:
    """Inverse of `delay_codes`; the last `delay` frames of codebooks 1.. become `fill`."""
    if delay == 0:
        return delayed
    acoustic = F.pad(delayed[:, 1:, delay:], (0, delay), value=fill)  # (B, K-1, F)
    return torch.cat([delayed[:, :1], acoustic], dim=1)


def shift_right(tokens: Tensor, fill: int) -> Tensor:
    """(..., F) -> (..., F): position t holds t - 1, `fill` at t = 0."""
    return F.pad(tokens[..., :-1], (1, 0), value=fill)


@dataclass
class S2SOutput:
    text_logits: Tensor  # (B, F, V): assistant_text[:, t] (log-probs with a copy head)
    code_logits: Tensor  # (B, K, F, card): delay_codes(assistant_codes)[:, k, t]
    user_text_logits: Tensor  # (B, F, V): user_text[:, t - user_text_delay]
    hidden: Tensor  # (B, F, D) temporal transformer output, for `turn_embedding`
    memory_weights: Tensor | None  # (B, F, M) retrieval weights, None without memory
    hearing_log_probs: Tensor | None = None  # (B, F * R, V) the ear's CTC, None without one
    copy_probs: Tensor | None = None  # (B, F, V) the copy head's distribution, None without one


@dataclass
class S2STargets:
    text: Tensor  # (B, F) long, IGNORE_INDEX where none
    codes: Tensor  # (B, K, F) long, delayed layout
    user_text: Tensor  # (B, F) long


@dataclass
class ForcedFrame:
    """Tokens that replace the model's choice for the items where `mask` is True."""

    mask: Tensor  # (B,) bool
    text: Tensor  # (B,) long
    codes: Tensor  # (B, K) long, delayed layout (codebook k >= 1 belongs to frame t - d)


@dataclass
class S2SStepOutput:
    text_token: Tensor  # (B,) the assistant's text token of this frame
    codes: Tensor  # (B, K) delayed layout, as fed back at the next step
    frame_codes: Tensor  # (B, K) the complete codes of frame t - d
    frame_valid: Tensor  # (B,) bool: False during an item's first d frames
    user_text_token: Tensor  # (B,) greedy user transcript token for frame t - u
    text_logits: Tensor  # (B, V) (log-probs with a copy head)
    code_logits: Tensor  # (B, K, card), each given the tokens chosen for codebooks < k
    user_text_logits: Tensor  # (B, V)
    hidden: Tensor  # (B, D)
    hearing_ids: Tensor | None = None  # (B, R) the ear's greedy CTC ids of this frame


@dataclass
class S2SState(StreamingState):
    prev_text: Tensor  # (B,) text token of the previous frame (TEXT_START when fresh)
    prev_codes: Tensor  # (B, K) delayed codes of the previous frame (CODE_START when fresh)
    pending_first: Tensor  # (B, d) codebook 0 of the last d frames, oldest first
    frame: Tensor  # (B,) frames stepped since the item's reset
    text_start: int = 0
    code_start: int = 0

    def reset(self, mask: Tensor) -> None:
        mask = mask.to(self.frame.device)
        self.prev_text = self.prev_text.masked_fill(mask, self.text_start)
        self.prev_codes = self.prev_codes.masked_fill(mask[:, None], self.code_start)
        self.pending_first = self.pending_first.masked_fill(mask[:, None], 0)
        self.frame = self.frame.masked_fill(mask, 0)


def greedy(logits: Tensor, stream: int) -> Tensor:
    return logits.argmax(dim=-1)
