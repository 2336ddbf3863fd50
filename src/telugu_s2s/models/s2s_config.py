"""The S2S model's config: the sizes and switches of `models.s2s.S2SModel` (re-exported
there, where hydra configs and older exports name it)."""

from __future__ import annotations

from dataclasses import dataclass

from telugu_s2s.data.text import VOCAB_SIZE
from telugu_s2s.models.code_hearing import CodeHearingConfig
from telugu_s2s.models.context_memory import ContextMemoryConfig
from telugu_s2s.models.copy_head import CopyHeadConfig
from telugu_s2s.modules.transformer import TransformerConfig


@dataclass
class S2SConfig:
    """Defaults are the tiny CPU model; `S2SConfig.base()` is the one-GPU size."""

    num_codebooks: int = 8
    codebook_size: int = 1024
    text_vocab_size: int = VOCAB_SIZE
    acoustic_delay: int = 1
    user_text_delay: int = 2
    # Temporal transformer (one step per 80 ms frame).
    d_model: int = 256
    num_layers: int = 6
    num_heads: int = 4
    context_frames: int = 250  # attention window: 20 s, the longest training timeline
    # Depth transformer (K steps within a frame).
    depth_d_model: int = 128
    depth_layers: int = 2
    depth_heads: int = 4
    dropout: float = 0.0
    rope_base: float = 10000.0
    attention_backend: str = "auto"  # auto | sdpa | flash
    # Conditioning (docs/conditioning.md); style ids are the indices of `styles`.
    speaker_dim: int = 192
    styles: tuple[str, ...] = ("default", "formal", "casual")
    speaker_dropout: float = 0.1  # training only: the learned null speaker instead
    speaker_fingerprint: str = ""  # of the speaker encoder whose bank was used in training
    codec_fingerprint: str = ""  # codes_fingerprint() of the codec whose tokens it learned
    # Context memory.
    memory_turns: int = 10
    memory_top_k: int = 3
    memory_attention_dim: int = 128
    memory_gate_init: float = 0.0  # sigmoid(gate): how open the memory's residual starts
    # The ear (models/code_hearing.py): a causal CTC recognizer over the user's codes whose
    # hidden states join the temporal input. 0 layers: none, the transformer hears alone.
    hearing_layers: int = 0
    hearing_hidden: int = 256
    hearing_embed_dim: int = 192
    hearing_sub_frames: int = 2
    # The copy head (models/copy_head.py): the text may repeat the characters the ear heard
    # in the attention window (a name, a place). Needs the ear.
    copy_head: bool = False
    # And from the context memory's turns (their text, `copy_memory_chars` characters each).
    copy_memory: bool = False
    copy_memory_chars: int = 96

    def temporal_config(self) -> TransformerConfig:
        return TransformerConfig(
            d_model=self.d_model, num_layers=self.num_layers, num_heads=self.num_heads,
            context=self.context_frames, rope_base=self.rope_base, dropout=self.dropout,
            attention_backend=self.attention_backend,
        )  # fmt: skip

    def depth_config(self) -> TransformerConfig:
        return TransformerConfig(
            d_model=self.depth_d_model, num_layers=self.depth_layers, num_heads=self.depth_heads,
            context=self.num_codebooks, rope_base=self.rope_base, dropout=self.dropout,
            attention_backend=self.attention_backend,
        )  # fmt: skip

    def hearing_config(self) -> CodeHearingConfig:
        return CodeHearingConfig(
            num_codebooks=self.num_codebooks, codebook_size=self.codebook_size,
            embed_dim=self.hearing_embed_dim, sub_frames=self.hearing_sub_frames,
            hidden=self.hearing_hidden, layers=self.hearing_layers, dropout=self.dropout,
            vocab_size=self.text_vocab_size,
        )  # fmt: skip

    def copy_head_config(self) -> CopyHeadConfig:
        return CopyHeadConfig(
            dim=self.d_model, vocab_size=self.text_vocab_size, window=self.context_frames,
            sub_frames=self.hearing_sub_frames, memory=self.copy_memory,
        )  # fmt: skip

    def memory_config(self) -> ContextMemoryConfig:
        return ContextMemoryConfig(
            dim=self.d_model, attention_dim=self.memory_attention_dim,
            max_turns=self.memory_turns, top_k=self.memory_top_k, gate_init=self.memory_gate_init,
        )  # fmt: skip

    @classmethod
    def base(cls) -> S2SConfig:
        """One GPU: 768-wide, 12 layers, a 60 s window, 2048-entry codebooks (the base codec)."""
        return cls(
            codebook_size=2048, acoustic_delay=2, d_model=768, num_layers=12, num_heads=12,
            context_frames=750, depth_d_model=384, depth_layers=4, depth_heads=6, dropout=0.1,
            memory_attention_dim=256,
        )  # fmt: skip
