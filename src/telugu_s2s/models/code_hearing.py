"""The S2S model's ear: a causal CTC recognizer over the user's codec codes.

Trained inside the temporal transformer, the user-transcript head stayed near deaf on
voices it had not heard (docs/training_s2s.md): its targets place one character per frame
at espeak-ng's word starts, while speech runs faster than that, so the frame a character
must come out at is not where its sound is. CTC learns that alignment itself. This small
recurrent network hears the user's codes (the S2S model's own input, so no audio is
needed in training or serving), emits characters with CTC, and hands the temporal
transformer its hidden states: the transformer reads what was said instead of learning to
hear.

    codes (B, K, F) -> sum of code embeddings (B, F, E) -> R sub-frames per frame (B, F*R, E)
    -> causal GRU stack (B, F*R, H) -> CTC log-probs over VOCAB (B, F*R, V)
    features for frame t: the R hidden states of its sub-frames, (B, F, R*H)

It is causal: frame t's features depend on codes up to t, so stepping frame by frame
inside `streaming(B)` gives exactly the offline output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from telugu_s2s.data.text import BLANK, PAD, VOCAB_SIZE, ctc_transcript
from telugu_s2s.modules.streaming import StreamingModule, StreamingState


@dataclass
class CodeHearingConfig:
    num_codebooks: int = 4
    codebook_size: int = 1024
    embed_dim: int = 192
    sub_frames: int = 3  # CTC steps per 80 ms frame: Telugu speech runs up to ~2 characters a frame
    hidden: int = 256
    layers: int = 3
    dropout: float = 0.1
    vocab_size: int = VOCAB_SIZE

    @property
    def feature_dim(self) -> int:
        return self.sub_frames * self.hidden


@dataclass
class CodeHearingState(StreamingState):
    hidden: Tensor  # (B, layers, H) GRU state, batch-first so that `reset` can mask items
    last_id: Tensor  # (B,) the greedy id of the last sub-frame (PAD when fresh)


@dataclass
class HearingOutput:
    features: Tensor  # (B, F, R*H)
    log_probs: Tensor  # (B, F*R, V)


class CodeHearing(StreamingModule[CodeHearingState]):
    config_class = CodeHearingConfig

    def __init__(self, cfg: CodeHearingConfig):
        super().__init__()
        self.cfg = cfg
        # Row k * card + j: code j of codebook k (as S2SModel's user table).
        self.embedding = nn.Embedding(cfg.num_codebooks * cfg.codebook_size, cfg.embed_dim)
        self.register_buffer(
            "offsets", torch.arange(cfg.num_codebooks) * cfg.codebook_size, persistent=False
        )
        self.expand = nn.Linear(cfg.embed_dim, cfg.sub_frames * cfg.embed_dim)
        self.rnn = nn.GRU(
            cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )  # fmt: skip
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden, cfg.vocab_size)

    def init_state(self, batch_size: int) -> CodeHearingState:
        device = self.embedding.weight.device
        hidden = torch.zeros(batch_size, self.cfg.layers, self.cfg.hidden, device=device)
        last_id = torch.full((batch_size,), PAD, dtype=torch.long, device=device)
        return CodeHearingState(batch_size=batch_size, hidden=hidden, last_id=last_id)

    def forward(self, codes: Tensor) -> HearingOutput:
        """codes (B, K, F) long; inside `streaming(B)` any F continues the stream."""
        codes = codes[:, : self.cfg.num_codebooks].long()
        x = self.embedding(codes + self.offsets[:, None]).sum(dim=1)  # (B, F, E)
        x = rearrange(
            torch.nn.functional.gelu(self.expand(x)),
            "b f (r e) -> b (f r) e",
            r=self.cfg.sub_frames,
        )
        if self.is_streaming:
            h0 = rearrange(self.state.hidden, "b l h -> l b h").contiguous()
            y, h = self.rnn(x, h0)
            self.state.hidden = rearrange(h, "l b h -> b l h")
        else:
            y, _ = self.rnn(x)  # (B, F*R, H)
        log_probs = self.head(self.dropout(y)).log_softmax(-1)  # (B, F*R, V)
        features = rearrange(y, "b (f r) h -> b f (r h)", r=self.cfg.sub_frames)
        return HearingOutput(features=features, log_probs=log_probs)

    def emissions(self, log_probs: Tensor) -> Tensor:
        """The greedy CTC characters (B, S) of log-probs (B, S, V): each character on the
        sub-frame that emits it, BLANK elsewhere (repeats collapse, also across calls
        inside `streaming()`). What the copy head may copy from."""
        ids = log_probs.argmax(-1)  # (B, S)
        if self.is_streaming:
            before = self.state.last_id
            self.state.last_id = ids[:, -1]
        else:
            before = torch.full_like(ids[:, 0], PAD)
        previous = torch.cat([before[:, None], ids[:, :-1]], dim=1)  # (B, S)
        return torch.where(ids != previous, ids, BLANK)

    def ctc_loss(self, log_probs: Tensor, frames: Tensor, targets: list[Tensor]) -> Tensor:
        """CTC over each item's first `frames` (B,) frames against its character ids."""
        lengths = frames * self.cfg.sub_frames
        flat = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)
        target_lengths = torch.tensor([len(t) for t in targets])
        return nn.functional.ctc_loss(
            rearrange(log_probs, "b s v -> s b v"), flat.to(log_probs.device), lengths.cpu(),
            target_lengths, blank=BLANK, zero_infinity=True,
        )  # fmt: skip

    def decode(self, log_probs: Tensor, frames: Tensor) -> list[str]:
        """Greedy CTC transcripts of each item's first `frames` (B,) frames."""
        best = log_probs.argmax(-1).tolist()  # (B, F * R)
        R = self.cfg.sub_frames
        return [ctc_transcript(ids[: n * R]) for ids, n in zip(best, frames.tolist(), strict=True)]
