"""A copy head: the assistant's text may repeat the characters the user just said.

Given the user's exact words, the text stage repeated 6% of the words that a valid reply
takes from the user's turn (names, places, dishes; `benchmarks/text_replies.py`). To copy
"మహేష్" a frame-level softmax must have learnt every name; a pointer needs to know only
where in the user's words it is.

The source is a stream of the user's characters, R positions per frame, each position a
character or nothing (BLANK/PAD): the ear's greedy CTC emissions in the S2S model
(`CodeHearing.emissions`, R = its sub-frames), the user's text frames in the text stage.
At frame t the head attends over the characters of frames t - window + 1 .. t:
- the key of a character is the temporal state of its frame with the character and the
  one said before it, [h_j; E(c_prev); E(c)]: h_j says what the word is (a name after
  "నేను"), the characters where in it the position is;
- the query is the state h_t with the assistant's character of frame t - 1.
So "the first character of the user's name" and "the character after the one I just
said" are each one dot product away. The attention's weights, summed per character id,
are a copy distribution; a gate mixes it into the text head's softmax. The output is
log-probabilities, which stand in for the text logits (CE and sampling alike).

With `memory` it also points at the characters of the context memory's turns, beyond the
window (a name said a minute ago). The source is each turn's text (`turn_characters`):
the user's words in training, the stored transcript on the server. No frame states are
stored with a turn, so a character's key is the turn's pooled embedding, the character,
and a bidirectional GRU's reading of it in the turn's text. The retrieval weight of its
turn multiplies a character's attention weight (its log is added to the score): the head
copies from the turns that the retrieval picked, which its loss trains to be a recall's
fact turn.

Streaming: inside `streaming(B)` each call continues the stream; the state keeps the keys
and characters of the last `window` frames, so chunked output equals the offline output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import repeat
from torch import Tensor, nn

from telugu_s2s.data.text import BLANK, EOS, PAD, VOCAB_SIZE, TextTokenizer
from telugu_s2s.modules.streaming import StreamingModule, StreamingState, module_device


@dataclass
class CopyHeadConfig:
    dim: int = 256  # the temporal transformer's width
    vocab_size: int = VOCAB_SIZE
    embed_dim: int = 64
    attention_dim: int = 64
    window: int = 125  # frames: the temporal attention window of the tiny model
    sub_frames: int = 1  # source positions per frame (the ear's CTC steps)
    memory: bool = False  # also copy from the context memory's turns


@dataclass
class CopyMemory:
    """The context memory's turns as a copy source for T query frames."""

    keys: Tensor  # (B, M * L, A) from `CopyHead.memory_keys`
    chars: Tensor  # (B, M * L) L characters per turn, PAD after its text
    weights: Tensor  # (B, T, M) the context memory's retrieval weights (0: not retrieved)


@dataclass
class CopyHeadState(StreamingState):
    keys: Tensor  # (B, W * R, A) keys of the last `window` frames' positions, oldest first
    chars: Tensor  # (B, W * R) their characters; PAD (a fresh stream) copies nothing
    last_char: Tensor  # (B,) the last character said before them, PAD if none


def spoken(chars: Tensor) -> Tensor:
    """(...) char ids -> bool: a character was said there (not BLANK or PAD)."""
    return (chars != BLANK) & (chars != PAD) & (chars != EOS)


def spread_frames(chars: Tensor, sub_frames: int) -> Tensor:
    """One character per frame (B, F) -> the copy source (B, F * R): each frame's character
    on its first position, BLANK on the others."""
    out = torch.full(
        (chars.shape[0], chars.shape[1], sub_frames), BLANK, dtype=chars.dtype, device=chars.device
    )
    out[..., 0] = chars
    return out.flatten(1)


def text_characters(texts: list[str], length: int) -> Tensor:
    """Texts -> (N, length) char ids, each cut at `length` and PAD after it."""
    chars, tokenizer = torch.full((len(texts), length), PAD, dtype=torch.long), TextTokenizer()
    for row, text in enumerate(texts):
        ids = tokenizer.encode(text)[:length]
        chars[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return chars


def text_spans(spans: Tensor, valid: Tensor, num_frames: int) -> Tensor:
    """Where each turn's text lies: from its start to the next valid turn's start (the last
    to `num_frames`). A user stream's text may outlast the audio span (`text_spill_frames`).
    spans (B, N, 2) in time order, valid (B, N) -> (B, N, 2)."""
    starts = spans[..., 0].masked_fill(~valid, num_frames)  # (B, N)
    following = starts.flip(-1).cummin(-1).values.flip(-1)  # (B, N): min start at or after n
    ends = torch.cat([following[:, 1:], torch.full_like(following[:, :1], num_frames)], -1)
    return torch.stack([spans[..., 0], torch.where(valid, ends, spans[..., 1])], -1)


def turn_characters(text: Tensor, spans: Tensor, length: int) -> Tensor:
    """The characters said in each turn: a frame text stream (B, F) and the turns' frame
    spans (B, N, 2) [start, end) -> (B, N, length), in order, PAD after the turn's text."""
    frames = torch.arange(text.shape[1], device=text.device)  # (F,)
    inside = (frames >= spans[..., :1]) & (frames < spans[..., 1:]) & spoken(text)[:, None]
    order = inside.long().argsort(dim=-1, descending=True, stable=True)[..., :length]  # (B, N, L)
    chars = text[:, None].expand(-1, spans.shape[1], -1).gather(-1, order)
    chars = chars.masked_fill(~inside.gather(-1, order), PAD)
    return F.pad(chars, (0, length - chars.shape[-1]), value=PAD)


class CopyHead(StreamingModule[CopyHeadState]):
    config_class = CopyHeadConfig

    def __init__(self, cfg: CopyHeadConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size + 1, cfg.embed_dim)  # + TEXT_START
        self.key = nn.Linear(cfg.dim + 2 * cfg.embed_dim, cfg.attention_dim)
        self.query = nn.Linear(cfg.dim + cfg.embed_dim, cfg.attention_dim)
        self.gate = nn.Linear(cfg.dim, 1)
        # Memory turns keep no frame states: a small recurrent reader of the turn's text
        # gives each character its context (which word, where in it), as h_j does above.
        self.memory_reader = (
            nn.GRU(cfg.embed_dim, cfg.embed_dim, batch_first=True, bidirectional=True)
            if cfg.memory else None
        )  # fmt: skip
        self.memory_key = (
            nn.Linear(cfg.dim + 3 * cfg.embed_dim, cfg.attention_dim) if cfg.memory else None
        )
        nn.init.constant_(self.gate.bias, -2.0)  # starts mostly generating: sigmoid(-2) = 0.12

    def init_state(self, batch_size: int) -> CopyHeadState:
        cfg, device = self.cfg, module_device(self)
        positions = cfg.window * cfg.sub_frames
        return CopyHeadState(
            batch_size,
            keys=torch.zeros(batch_size, positions, cfg.attention_dim, device=device),
            chars=torch.full((batch_size, positions), PAD, dtype=torch.long, device=device),
            last_char=torch.full((batch_size,), PAD, dtype=torch.long, device=device),
        )

    def keys(self, hidden: Tensor, chars: Tensor, before: Tensor) -> tuple[Tensor, Tensor]:
        """Keys (B, T * R, A) of the source positions of T frames, and the last character
        said up to their end (B,). hidden (B, T, D); chars (B, T * R); before (B,): the
        last character said before these frames (PAD if none)."""
        said = spoken(chars)  # (B, S)
        position = torch.arange(chars.shape[1], device=chars.device).expand_as(chars)
        last = torch.where(said, position, -1).cummax(dim=1).values  # (B, S): said at or before
        previous = F.pad(last[:, :-1], (1, 0), value=-1)  # (B, S): said strictly before
        prev_chars = torch.where(
            previous >= 0, chars.gather(1, previous.clamp_min(0)), before[:, None]
        )
        frame_states = repeat(hidden, "b t d -> b (t r) d", r=self.cfg.sub_frames)
        features = torch.cat([frame_states, self.embedding(prev_chars), self.embedding(chars)], -1)
        final = last[:, -1]  # (B,)
        last_char = torch.where(
            final >= 0, chars.gather(1, final.clamp_min(0)[:, None])[:, 0], before
        )
        return self.key(features), last_char

    def memory_keys(self, turns: Tensor, chars: Tensor) -> Tensor:
        """Keys (B, M * L, A) of the memory turns' characters: turns (B, M, D) pooled, chars
        (B, M, L) their text, read in context by `memory_reader`."""
        if self.memory_reader is None or self.memory_key is None:
            raise ValueError("this copy head was built without `memory`")
        B, M, L = chars.shape
        embedded = self.embedding(chars)  # (B, M, L, E)
        read, _ = self.memory_reader(embedded.flatten(0, 1))  # (B * M, L, 2E)
        turn = turns[:, :, None].expand(-1, -1, L, -1)  # (B, M, L, D)
        features = torch.cat([turn.to(read), read.view(B, M, L, read.shape[-1]), embedded], -1)
        return self.memory_key(features).flatten(1, 2)

    def forward(
        self, logits: Tensor, hidden: Tensor, prev_text: Tensor, chars: Tensor,
        memory: CopyMemory | None = None, return_copy: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:  # fmt: skip
        """The text head's logits (B, T, V), the temporal states (B, T, D), the assistant's
        previous characters (B, T) and the source (B, T * R) of the same T frames ->
        log-probabilities (B, T, V) with copying mixed in; `memory`: the memory's turns.
        `return_copy`: also the copy distribution (B, T, V), for `copy_loss`."""
        B, T = hidden.shape[:2]
        if self.is_streaming:
            state, kept = self.state, self.cfg.window * self.cfg.sub_frames
            keys, state.last_char = self.keys(hidden, chars, state.last_char)
            keys, chars = torch.cat([state.keys, keys], 1), torch.cat([state.chars, chars], 1)
            state.keys, state.chars = keys[:, -kept:], chars[:, -kept:]
            first_frame = self.cfg.window  # the buffer holds the `window` frames before
        else:
            keys, _ = self.keys(hidden, chars, torch.full((B,), PAD, device=chars.device))
            first_frame = 0
        frames = first_frame + torch.arange(T, device=hidden.device)  # (T,) query frames
        copy, gate = self.copy_distribution(hidden, prev_text, keys, chars, frames, memory)
        mixed = ((1 - gate) * logits.float().softmax(-1) + gate * copy).clamp_min(1e-9).log()
        return (mixed, copy) if return_copy else mixed

    def copy_distribution(
        self, hidden: Tensor, prev_text: Tensor, keys: Tensor, chars: Tensor, frames: Tensor,
        memory: CopyMemory | None = None,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Copy probabilities (B, T, V) and the gate (B, T, 1) of query frames `frames` (T,)
        over source positions (B, S) whose position s belongs to frame s // R, and over the
        memory's characters."""
        cfg = self.cfg
        queries = self.query(torch.cat([hidden, self.embedding(prev_text)], -1))  # (B, T, A)
        scores = (queries @ keys.transpose(1, 2)).float() / math.sqrt(cfg.attention_dim)
        source_frames = torch.arange(chars.shape[1], device=chars.device) // cfg.sub_frames
        lag = frames[:, None] - source_frames[None]  # (T, S)
        visible = (lag >= 0) & (lag < cfg.window)
        mask = visible[None] & spoken(chars)[:, None]  # (B, T, S)
        if memory is not None:  # a turn's weight times the character's attention within it
            length = memory.chars.shape[1] // memory.weights.shape[-1]  # L
            turn_weights = memory.weights.float().repeat_interleave(length, dim=-1)  # (B, T, M*L)
            memory_scores = (queries @ memory.keys.transpose(1, 2)).float() / math.sqrt(
                cfg.attention_dim
            ) + turn_weights.clamp_min(1e-9).log()
            scores = torch.cat([scores, memory_scores], -1)  # (B, T, S + M * L)
            mask = torch.cat([mask, (turn_weights > 0) & spoken(memory.chars)[:, None]], -1)
            chars = torch.cat([chars, memory.chars], 1)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        anything = mask.any(-1, keepdim=True)  # (B, T, 1): something to copy
        weights = torch.nan_to_num(weights) * anything
        ids = chars[:, None].expand(-1, hidden.shape[1], -1)  # (B, T, S)
        copy = hidden.new_zeros(*hidden.shape[:2], cfg.vocab_size, dtype=torch.float32)
        copy = copy.scatter_add(-1, ids, weights)  # (B, T, V)
        gate = torch.sigmoid(self.gate(hidden).float()) * anything  # (B, T, 1)
        return copy, gate


def copy_loss(copy: Tensor, targets: Tensor) -> Tensor:
    """The pointer's own loss: the NLL of the copy distribution (B, T, V) on the target
    characters (B, T) that its source holds (others, and negative ids, are left out).

    Mixed into the text head through a gate, the pointer learns only as fast as the gate
    lets its gradient through; a CPU duplex run shut the gate (0.12 -> 0.008) before the
    pointer had learned. With its own loss it learns whatever the gate does."""
    picked = copy.gather(-1, targets.clamp_min(0)[..., None])[..., 0]  # (B, T)
    copyable = (targets >= 0) & (picked > 0)
    if not copyable.any():
        return copy.sum() * 0.0
    return -picked[copyable].log().mean()
