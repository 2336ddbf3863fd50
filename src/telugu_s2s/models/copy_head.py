"""A copy head: the assistant's text may repeat the characters the user just said.

Given the user's exact words, the text stage repeated 6% of the words that a valid reply
takes from the user's turn (names, places, dishes; `benchmarks/text_replies.py`). To copy
"మహేష్" a frame-level softmax must have learnt every name; a pointer needs to know only
where in the user's words it is. At frame t the head attends over the user's characters
of the last `window` frames:
- the key of user frame j is its temporal state with its character and the one before
  it, [h_j; E(c_j-1); E(c_j)]: h_j says what the word is (a name after "నేను"), the
  characters where in it the frame is;
- the query is the temporal state h_t with the assistant's character of frame t - 1.
So "the first character of the user's name" and "the character after the one I just
said" are each one dot product away. The attention's
weights, summed per character id, are a copy distribution; a gate mixes it with the text
head's softmax. `mix` returns log-probabilities, which stand in for the text logits (CE
and sampling alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from telugu_s2s.data.text import BLANK, PAD, VOCAB_SIZE


@dataclass
class CopyHeadConfig:
    dim: int = 256  # the temporal transformer's width
    vocab_size: int = VOCAB_SIZE
    embed_dim: int = 64
    attention_dim: int = 64
    window: int = 125  # frames: the attention window of the tiny model


class CopyHead(nn.Module):
    def __init__(self, cfg: CopyHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size + 1, cfg.embed_dim)  # + TEXT_START
        self.key = nn.Linear(cfg.dim + 2 * cfg.embed_dim, cfg.attention_dim)
        self.query = nn.Linear(cfg.dim + cfg.embed_dim, cfg.attention_dim)
        self.gate = nn.Linear(cfg.dim, 1)
        nn.init.constant_(self.gate.bias, -2.0)  # starts mostly generating: sigmoid(-2) = 0.12

    def keys(self, user_hidden: Tensor, user_text: Tensor, before: Tensor | None = None) -> Tensor:
        """Keys (B, S, A) of user frames: hidden states (B, S, D), characters (B, S), and the
        character of the frame before the first (B,) (BLANK if None: the stream's start)."""
        start = torch.full_like(user_text[:, :1], BLANK) if before is None else before[:, None]
        previous = torch.cat([start, user_text[:, :-1]], dim=1)  # (B, S): c_{j-1}
        chars = torch.cat([self.embedding(previous), self.embedding(user_text)], -1)
        return self.key(torch.cat([user_hidden, chars], -1))

    def copy_distribution(
        self, hidden: Tensor, prev_text: Tensor, user_text: Tensor, positions: Tensor,
        keys: Tensor,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Copy probabilities (B, T, V) and the gate (B, T, 1).

        hidden (B, T, D) and prev_text (B, T): frames `positions` (T,) of the user stream
        user_text (B, S) with its `keys` (B, S, A), S > max(positions); frame t sees user
        frames j <= t within the window.
        """
        queries = self.query(torch.cat([hidden, self.embedding(prev_text)], -1))  # (B, T, A)
        scores = queries @ keys.transpose(1, 2) / math.sqrt(keys.shape[-1])  # (B, T, S)
        frames = torch.arange(user_text.shape[1], device=user_text.device)  # (S,)
        lag = positions[:, None] - frames[None]  # (T, S)
        spoken = (user_text != BLANK) & (user_text != PAD)  # (B, S)
        visible = (lag >= 0) & (lag < self.cfg.window)  # (T, S)
        mask = visible[None] & spoken[:, None]  # (B, T, S)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        anything = mask.any(-1, keepdim=True)  # (B, T, 1): something to copy
        weights = torch.nan_to_num(weights) * anything
        ids = user_text[:, None].expand(-1, hidden.shape[1], -1)  # (B, T, S)
        copy = torch.zeros(*hidden.shape[:2], self.cfg.vocab_size, device=hidden.device)
        copy = copy.scatter_add(-1, ids, weights.to(copy.dtype))  # (B, T, V)
        gate = torch.sigmoid(self.gate(hidden)) * anything  # (B, T, 1)
        return copy, gate

    def mix(
        self, logits: Tensor, hidden: Tensor, prev_text: Tensor, user_text: Tensor,
        positions: Tensor, keys: Tensor,
    ) -> Tensor:  # fmt: skip
        """The text head's logits (B, T, V) -> log-probabilities with copying mixed in."""
        copy, gate = self.copy_distribution(hidden, prev_text, user_text, positions, keys)
        mixed = (1 - gate) * logits.float().softmax(-1) + gate * copy
        return mixed.clamp_min(1e-9).log()
