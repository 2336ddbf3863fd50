"""Context memory: attention over the pooled embeddings of the last 10 turns, and turn analysis.

A turn is summarised by `pool_turn`: the mean of the S2S temporal transformer's hidden
states over the turn's frames (the lit module and the server choose the span: the user
utterance, or the utterance plus the reply). The memory of a session holds up to
`max_turns` such vectors, a sliding window that evicts the oldest.

Batched layout (the S2S model and the generator): `memory (B, M, D)` with
`mask (B, M)`, right-aligned: the newest turn is at index M - 1 and empty slots (mask
False) are on the left. `append` shifts an item left by one and writes the new turn
last, so a full memory drops its oldest turn. Retrieval is order-free, so the layout only
matters for eviction. `TurnMemoryState` is the same window for one session on the server.

Retrieval: a query (per frame of the temporal transformer's input) attends over the
memory with Q/K/V projections and keeps the `top_k` best-scoring turns. The context
enters the temporal transformer through a gated residual, `x + sigmoid(gate) * proj(context)`,
with a small `proj` (std 0.02) and a half-open gate. (A gate that starts nearly closed,
sigmoid(-4), stayed there: 0.0175 after the 700-step tiny run, so memory on and off differed
by sampling noise only. Adam moves a parameter about lr per step, far too little to open it.)

Analysis heads on a pooled user turn give sentiment (tanh, -1..1), topic logits and
emotion logits (a distribution after softmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from telugu_s2s.data.text import PAD
from telugu_s2s.labels import EMOTIONS, TOPICS
from telugu_s2s.models.copy_head import text_characters


@dataclass
class ContextMemoryConfig:
    dim: int = 256  # turn embeddings and the stream they fuse into (the S2S d_model)
    attention_dim: int = 128  # query/key size
    max_turns: int = 10
    top_k: int = 3
    num_topics: int = len(TOPICS)
    num_emotions: int = len(EMOTIONS)
    gate_init: float = 0.0  # sigmoid(0) = 0.5; an empty memory still adds exactly nothing


@dataclass
class TurnAnalysis:
    sentiment: Tensor  # (B,) in [-1, 1]
    topic_logits: Tensor  # (B, num_topics)
    emotion_logits: Tensor  # (B, num_emotions)

    @property
    def emotion_probs(self) -> Tensor:
        return self.emotion_logits.softmax(dim=-1)  # (B, num_emotions), rows sum to 1

    @property
    def topic(self) -> Tensor:
        return self.topic_logits.argmax(dim=-1)  # (B,)


class ContextMemory(nn.Module):
    def __init__(self, cfg: ContextMemoryConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.query = nn.Linear(cfg.dim, cfg.attention_dim, bias=False)
        self.key = nn.Linear(cfg.dim, cfg.attention_dim, bias=False)
        self.value = nn.Linear(cfg.dim, cfg.dim, bias=False)
        # No bias: an empty memory gives a zero context and an exactly unchanged stream.
        self.context_proj = nn.Linear(cfg.dim, cfg.dim, bias=False)
        nn.init.normal_(self.context_proj.weight, std=0.02)  # a small residual at first
        self.gate = nn.Parameter(torch.full((cfg.dim,), cfg.gate_init))
        self.analysis = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU())
        self.sentiment_head = nn.Linear(cfg.dim, 1)
        self.topic_head = nn.Linear(cfg.dim, cfg.num_topics)
        self.emotion_head = nn.Linear(cfg.dim, cfg.num_emotions)

    # Retrieval and fusion.

    def retrieve(
        self, query: Tensor, memory: Tensor, mask: Tensor | None = None, top_k: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Attend from `query` over the stored turns, keeping the `top_k` best (cfg default).

        query (B, D) or (B, T, D); memory (B, M, D); mask (B, M) or (B, T, M), True = stored.
        Returns context (B, [T,] D) and weights (B, [T,] M): zero outside the top k and
        everywhere for an item with an empty memory (whose context is then zero).
        """
        top_k = self.cfg.top_k if top_k is None else top_k
        q = self.query(query)  # (B, [T,] A)
        k = self.key(memory)  # (B, M, A)
        v = self.value(memory)  # (B, M, D)
        scores = torch.einsum("b...a,bma->b...m", q, k) / math.sqrt(q.shape[-1])  # (B, [T,] M)
        if mask is None:
            valid = torch.ones_like(scores, dtype=torch.bool)
        else:
            valid = mask.bool()
            if valid.dim() < scores.dim():  # one memory mask for every query frame
                valid = valid[:, None].expand_as(scores)
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)
        if top_k < scores.shape[-1]:
            kth = scores.topk(top_k, dim=-1).values[..., -1:]  # (B, [T,] 1)
            valid = valid & (scores >= kth)
        # Finite fill + explicit zeroing: no NaN for an empty memory, and weights outside
        # the kept turns are exactly zero.
        weights = scores.masked_fill(~valid, torch.finfo(scores.dtype).min).softmax(dim=-1) * valid
        context = torch.einsum("b...m,bmd->b...d", weights, v)  # (B, [T,] D)
        return context, weights

    def fuse(self, x: Tensor, context: Tensor) -> Tensor:
        """Gated residual: x (B, T, D) + sigmoid(gate) * proj(context (B, T, D))."""
        return x + torch.sigmoid(self.gate) * self.context_proj(context)

    def forward(
        self, x: Tensor, memory: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Retrieve with each frame of x (B, T, D) as the query and fuse: (x', weights (B, T, M))."""
        context, weights = self.retrieve(x, memory, mask)  # (B, T, D), (B, T, M)
        return self.fuse(x, context), weights

    # Turn embeddings and analysis.

    @staticmethod
    def pool_turn(hidden: Tensor, span_mask: Tensor) -> Tensor:
        """Masked mean over frames: hidden (B, F, D), span_mask (B, F) or (B, N, F) -> (B, [N,] D).

        An empty span pools to zeros.
        """
        weights = span_mask.to(hidden.dtype)  # (B, [N,] F)
        total = torch.einsum("b...f,bfd->b...d", weights, hidden)  # (B, [N,] D)
        count = weights.sum(dim=-1, keepdim=True).clamp_min(1.0)  # (B, [N,] 1)
        return total / count

    @staticmethod
    def span_mask(spans: Tensor, num_frames: int) -> Tensor:
        """Frame spans (B, N, 2) as [start, end) -> a mask (B, N, F) for `pool_turn`."""
        frames = torch.arange(num_frames, device=spans.device)  # (F,)
        return (frames >= spans[..., :1]) & (frames < spans[..., 1:])  # (B, N, F)

    def analyze(self, pooled: Tensor) -> TurnAnalysis:
        """pooled user turn (B, D) (or (B, N, D)) -> sentiment, topic and emotion."""
        h = self.analysis(pooled)  # (B, [N,] D)
        return TurnAnalysis(
            sentiment=torch.tanh(self.sentiment_head(h)).squeeze(-1),  # (B, [N])
            topic_logits=self.topic_head(h),  # (B, [N,] num_topics)
            emotion_logits=self.emotion_head(h),  # (B, [N,] num_emotions)
        )

    # The batched sliding window.

    def empty(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """An empty batched memory: zeros (B, max_turns, D) and mask (B, max_turns) all False."""
        memory = torch.zeros(
            batch_size, self.cfg.max_turns, self.cfg.dim, device=device, dtype=dtype
        )
        return memory, torch.zeros(batch_size, self.cfg.max_turns, dtype=torch.bool, device=device)

    @staticmethod
    def append(
        memory: Tensor, mask: Tensor, turn: Tensor, which: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Append turn (B, D) to the items where `which` (B,) is True (all when None).

        memory (B, M, D), mask (B, M), right-aligned: the oldest turn falls off a full memory.
        """
        shifted = torch.cat([memory[:, 1:], turn[:, None].to(memory.dtype)], dim=1)  # (B, M, D)
        shifted_mask = torch.cat([mask[:, 1:], torch.ones_like(mask[:, :1])], dim=1)  # (B, M)
        if which is None:
            return shifted, shifted_mask
        which = which.to(memory.device).bool()
        return (
            torch.where(which[:, None, None], shifted, memory),
            torch.where(which[:, None], shifted_mask, mask),
        )


@dataclass
class TurnMemoryState:
    """One session's window of turn embeddings, oldest first, for the server and its store,
    with each turn's user text (what a copy head may copy from the memory; "" if unknown)."""

    max_turns: int = 10
    turns: list[Tensor] = field(default_factory=list)  # each (D,)
    texts: list[str] = field(default_factory=list)  # one per turn

    def __post_init__(self) -> None:
        self.turns = self.turns[-self.max_turns :] if self.turns else []
        self.texts = (list(self.texts) + [""] * len(self.turns))[: len(self.turns)]

    def __len__(self) -> int:
        return len(self.turns)

    def append(self, embedding: Tensor, text: str = "") -> None:
        """Store a pooled turn (D,) and its text; the oldest is evicted beyond `max_turns`."""
        if embedding.dim() != 1:
            raise ValueError(f"a turn embedding is (D,), got {tuple(embedding.shape)}")
        self.turns.append(embedding.detach().to("cpu", torch.float32).clone())
        self.texts.append(text)
        del self.turns[: -self.max_turns], self.texts[: -self.max_turns]

    def as_row(
        self, dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """The batched layout of one item: memory (max_turns, D) and mask (max_turns,), right-aligned."""
        memory = torch.zeros(self.max_turns, dim, device=device, dtype=dtype)
        mask = torch.zeros(self.max_turns, dtype=torch.bool, device=device)
        if self.turns:
            n = len(self.turns)
            memory[-n:] = torch.stack(self.turns).to(memory)
            mask[-n:] = True
        return memory, mask

    def chars_row(self, length: int, device: torch.device | None = None) -> Tensor:
        """The turns' texts in the same layout: (max_turns, length) char ids, PAD after each."""
        chars = torch.full((self.max_turns, length), PAD, dtype=torch.long)
        if self.texts:
            chars[-len(self.texts) :] = text_characters(self.texts, length)
        return chars.to(device)

    def to_tensors(self) -> list[Tensor]:
        """Serialisable form: the turn embeddings, oldest first (CPU float32)."""
        return [t.clone() for t in self.turns]

    def to_tensor(self, dim: int) -> Tensor:
        """All turns stacked, (n, D) with n <= max_turns (for safetensors or a database blob)."""
        return torch.stack(self.turns) if self.turns else torch.zeros(0, dim)

    @classmethod
    def from_tensors(
        cls, tensors: list[Tensor] | Tensor, max_turns: int = 10, texts: list[str] | None = None
    ) -> TurnMemoryState:
        state = cls(max_turns=max_turns)
        turns = tensors if isinstance(tensors, list) else list(tensors.unbind(0))  # (D,) each
        for turn, text in zip(turns, texts or [""] * len(turns), strict=True):
            state.append(turn, text)
        return state
