"""A small causal baseline for the S2S stage: log-mel frames of the user channel ->
a GRU -> per-frame logits for the assistant's text stream and the user transcript.

It sets the floor the codec-token S2S transformer must beat, and keeps `stage=s2s`
trainable before a codec checkpoint exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from telugu_s2s.data.text import VOCAB_SIZE
from telugu_s2s.modules.features import MelSpectrogram


@dataclass
class FrameBaselineConfig:
    sample_rate: int = 16000
    frame_size: int = 1280  # 80 ms
    n_mels: int = 40
    mel_hop: int = 160  # 8 mel frames per model frame
    hidden: int = 128
    num_layers: int = 1
    vocab_size: int = VOCAB_SIZE
    num_speakers: int = 4
    num_styles: int = 3


class FrameBaseline(nn.Module):
    config_class = FrameBaselineConfig

    def __init__(self, cfg: FrameBaselineConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.frame_size % cfg.mel_hop:
            raise ValueError("frame_size must be a multiple of mel_hop")
        self.mel = MelSpectrogram(sample_rate=cfg.sample_rate, n_mels=cfg.n_mels, hop_length=cfg.mel_hop)
        per_frame = cfg.frame_size // cfg.mel_hop
        self.frame_proj = nn.Linear(cfg.n_mels * per_frame, cfg.hidden)
        self.speaker = nn.Embedding(cfg.num_speakers, cfg.hidden)
        self.style = nn.Embedding(cfg.num_styles, cfg.hidden)
        self.rnn = nn.GRU(cfg.hidden, cfg.hidden, num_layers=cfg.num_layers, batch_first=True)
        self.assistant_text = nn.Linear(cfg.hidden, cfg.vocab_size)
        self.user_text = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, user_audio: torch.Tensor, speaker_id: torch.Tensor, style_id: torch.Tensor) -> dict:
        """user_audio (B, 1, F*frame_size) -> logits (B, F, V) for both text streams."""
        cfg = self.cfg
        num_frames = user_audio.shape[-1] // cfg.frame_size
        per_frame = cfg.frame_size // cfg.mel_hop
        mel = self.mel(user_audio.squeeze(1))  # (B, M, >= F*per_frame)
        mel = mel[..., : num_frames * per_frame]
        frames = rearrange(mel, "b m (f k) -> b f (k m)", k=per_frame)  # (B, F, K*M)
        x = self.frame_proj(frames)  # (B, F, H)
        x = x + (self.speaker(speaker_id) + self.style(style_id))[:, None]  # (B, F, H)
        h, _ = self.rnn(x)  # (B, F, H), causal in time
        return {"assistant_text": self.assistant_text(h), "user_text": self.user_text(h)}
