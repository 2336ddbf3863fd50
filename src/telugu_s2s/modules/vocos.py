"""Vocos-style causal decoder: ConvNeXt blocks and an iSTFT head, no transposed convolutions.

    latent (B, D, F) at 12.5 Hz
    -> causal conv (kernel 3) -> LayerNorm -> `frame_blocks` ConvNeXt blocks at the frame rate
    -> linear to `upsample` sub-frames per frame (a per-frame reshape, no transposed conv)
    -> `blocks` ConvNeXt blocks at frame_rate * upsample (100 Hz by default)
    -> LayerNorm -> iSTFT head (one STFT frame per sub-frame, hop = frame_size / upsample)
    -> audio (B, 1, F * frame_size)

Every layer is causal: the depthwise convolutions are left-padded streaming convs and the
rest is per step, so sub-frame `j` of frame `t` depends on latents up to `t` only. The
iSTFT windows of frame `t`'s sub-frames start inside frame `t`; their tails that reach
into frame `t + 1` are buffered and overlap-added there (see modules/istft.py). A frame's
samples are therefore final when that frame is decoded: one frame of latency, as the
SEANet decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from telugu_s2s.modules.conv import StreamingConv1d
from telugu_s2s.modules.istft import ISTFTHead
from telugu_s2s.modules.streaming import StreamingContainer


@dataclass
class VocosDecoderConfig:
    dimension: int = 128  # latent size at the frame rate (the quantizer's output)
    frame_size: int = 1280  # audio samples per latent frame
    frame_dim: int = 256  # channels of the frame-rate blocks
    frame_blocks: int = 2
    frame_kernel: int = 3  # depthwise kernel at the frame rate: 3 frames = 240 ms
    upsample: int = 8  # sub-frames (STFT frames) per latent frame: hop = frame_size / upsample
    dim: int = 192  # channels of the sub-frame blocks
    blocks: int = 6
    kernel: int = 7  # depthwise kernel at the sub-frame rate: 70 ms at 100 Hz
    mlp_ratio: float = 3.0  # ConvNeXt's pointwise MLP width, times the channels
    n_fft: int = 640  # 4 hops, as Vocos: a 40 ms window at 16 kHz

    def __post_init__(self) -> None:
        if self.frame_size % self.upsample:
            raise ValueError(f"upsample {self.upsample} must divide frame_size {self.frame_size}")
        if self.n_fft < self.hop_length:
            raise ValueError(f"n_fft {self.n_fft} < hop {self.hop_length}: samples left empty")

    @property
    def hop_length(self) -> int:
        return self.frame_size // self.upsample


class CausalConvNeXtBlock(StreamingContainer):
    """x + gamma * MLP(LayerNorm(causal depthwise conv(x))) over (B, C, T), as in ConvNeXt."""

    def __init__(self, dim: int, kernel: int, mlp_ratio: float, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = StreamingConv1d(dim, dim, kernel, groups=dim)
        self.norm = nn.LayerNorm(dim)
        hidden = int(mlp_ratio * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        # Layer scale (small at init) keeps a deep residual stack near identity at first.
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).transpose(1, 2)  # (B, T, C): as many steps as x
        y = self.gamma * self.mlp(self.norm(y))
        return x + y.transpose(1, 2)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, T): per step, so causal."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class VocosDecoder(StreamingContainer):
    """Latent (B, dimension, F) -> audio (B, 1, F * frame_size), one frame per frame."""

    def __init__(self, cfg: VocosDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        scale = 1.0 / max(1, cfg.frame_blocks + cfg.blocks)  # Vocos: 1 / number of blocks
        self.embed = StreamingConv1d(cfg.dimension, cfg.frame_dim, cfg.frame_kernel)
        self.embed_norm = ChannelNorm(cfg.frame_dim)
        self.frame_blocks = nn.Sequential(
            *(
                CausalConvNeXtBlock(cfg.frame_dim, cfg.frame_kernel, cfg.mlp_ratio, scale)
                for _ in range(cfg.frame_blocks)
            )
        )
        # Each frame's vector becomes `upsample` sub-frame vectors: a linear map, then a reshape.
        self.to_subframes = nn.Conv1d(cfg.frame_dim, cfg.upsample * cfg.dim, 1)
        self.blocks = nn.Sequential(
            *(
                CausalConvNeXtBlock(cfg.dim, cfg.kernel, cfg.mlp_ratio, scale)
                for _ in range(cfg.blocks)
            )
        )
        self.final_norm = ChannelNorm(cfg.dim)
        self.head = ISTFTHead(cfg.dim, cfg.n_fft, cfg.hop_length)

    def forward(self, latent: Tensor) -> Tensor:
        x = self.embed_norm(self.embed(latent))  # (B, frame_dim, F)
        x = self.frame_blocks(x)
        x = rearrange(self.to_subframes(x), "b (u c) f -> b c (f u)", u=self.cfg.upsample)
        x = self.final_norm(self.blocks(x))  # (B, dim, F * upsample)
        return self.head(x)  # (B, 1, F * frame_size)
