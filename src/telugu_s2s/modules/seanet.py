"""SEANet-style causal encoder and decoder (as in EnCodec and Mimi), streaming exactly.

Encoder: conv -> [residual units -> ELU -> strided conv (channels x2)] per ratio -> ELU
-> conv to `dimension` -> optional LSTM. The decoder mirrors it with transposed convs.
With ratios (4, 5, 8, 8) a 16 kHz signal becomes a 12.5 Hz latent: one vector per
80 ms frame (`hop_length` = 1280 samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn

from telugu_s2s.modules.conv import StreamingConv1d, StreamingConvTranspose1d
from telugu_s2s.modules.streaming import (
    StreamingContainer,
    StreamingModule,
    StreamingState,
    module_device,
)


@dataclass
class SEANetConfig:
    channels: int = 1  # audio channels
    dimension: int = 64  # latent size at the frame rate
    n_filters: int = 12  # channels of the first (full-rate) stage; doubled at each downsampling
    max_filters: int = 512  # cap on the doubling
    ratios: tuple[int, ...] = (4, 5, 8, 8)  # encoder strides; the decoder uses them reversed
    kernel_size: int = 7  # first conv (and the decoder's last)
    last_kernel_size: int = 3  # encoder's last conv (and the decoder's first), at the frame rate
    residual_kernel_size: int = 3
    n_residual_layers: int = 1  # residual units per stage, dilations dilation_base**j
    dilation_base: int = 2
    compress: int = 2  # residual units squeeze channels by this factor
    lstm_layers: int = 0  # causal LSTM at the bottleneck (0 = none)
    weight_norm: bool = True

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    def stage_channels(self, stage: int) -> int:
        """Channels after `stage` downsamplings (stage 0 = full rate)."""
        return min(self.n_filters * 2**stage, self.max_filters)


class SEANetResidualUnit(StreamingContainer):
    """x + conv1x1(ELU(dilated conv(ELU(x)))), both convs causal."""

    def __init__(
        self, dim: int, kernel_size: int, dilation: int, compress: int, weight_norm: bool
    ) -> None:
        super().__init__()
        hidden = dim // compress
        self.block = nn.Sequential(
            nn.ELU(),
            StreamingConv1d(dim, hidden, kernel_size, dilation=dilation, weight_norm=weight_norm),
            nn.ELU(),
            StreamingConv1d(hidden, dim, 1, weight_norm=weight_norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)  # (B, C, T): stride-1 convs return as many steps as they get


@dataclass
class LSTMState(StreamingState):
    hidden: Tensor  # (B, layers, D)
    cell: Tensor  # (B, layers, D)


class StreamingLSTM(StreamingModule[LSTMState]):
    """Unidirectional LSTM with a skip connection over (B, D, T); causal by construction."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers, batch_first=True)

    def init_state(self, batch_size: int) -> LSTMState:
        shape = (batch_size, self.lstm.num_layers, self.lstm.hidden_size)
        device = module_device(self)
        return LSTMState(
            batch_size, torch.zeros(shape, device=device), torch.zeros(shape, device=device)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x (B, D, T) -> (B, D, T)."""
        if x.shape[-1] == 0:
            return x
        seq = rearrange(x, "b d t -> b t d")
        if self.is_streaming:
            state = self.state
            h0 = rearrange(state.hidden, "b l d -> l b d").contiguous()
            c0 = rearrange(state.cell, "b l d -> l b d").contiguous()
            out, (h, c) = self.lstm(seq, (h0, c0))  # out (B, T, D), h and c (L, B, D)
            state.hidden = rearrange(h, "l b d -> b l d")
            state.cell = rearrange(c, "l b d -> b l d")
        else:
            out, _ = self.lstm(seq)  # (B, T, D)
        return x + rearrange(out, "b t d -> b d t")


def _residual_units(cfg: SEANetConfig, dim: int) -> list[nn.Module]:
    return [
        SEANetResidualUnit(
            dim, cfg.residual_kernel_size, cfg.dilation_base**j, cfg.compress, cfg.weight_norm
        )
        for j in range(cfg.n_residual_layers)
    ]


class SEANetEncoder(StreamingContainer):
    """Audio (B, channels, T) -> latent (B, dimension, T // hop_length)."""

    def __init__(self, cfg: SEANetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        wn = cfg.weight_norm
        layers: list[nn.Module] = [
            StreamingConv1d(cfg.channels, cfg.stage_channels(0), cfg.kernel_size, weight_norm=wn)
        ]
        for stage, ratio in enumerate(cfg.ratios):
            dim, out_dim = cfg.stage_channels(stage), cfg.stage_channels(stage + 1)
            layers += _residual_units(cfg, dim)
            # Kernel 2 * ratio: each frame also sees the previous frame (left pad = ratio).
            layers += [
                nn.ELU(),
                StreamingConv1d(dim, out_dim, 2 * ratio, stride=ratio, weight_norm=wn),
            ]
        bottleneck = cfg.stage_channels(len(cfg.ratios))
        layers += [
            nn.ELU(),
            StreamingConv1d(bottleneck, cfg.dimension, cfg.last_kernel_size, weight_norm=wn),
        ]
        if cfg.lstm_layers > 0:
            layers.append(StreamingLSTM(cfg.dimension, cfg.lstm_layers))
        self.layers = nn.Sequential(*layers)

    def forward(self, audio: Tensor) -> Tensor:
        return self.layers(audio)  # (B, channels, T) -> (B, dimension, T // hop_length)


class SEANetDecoder(StreamingContainer):
    """Latent (B, dimension, F) -> audio (B, channels, F * hop_length), one frame per frame."""

    def __init__(self, cfg: SEANetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        wn = cfg.weight_norm
        stages = len(cfg.ratios)
        layers: list[nn.Module] = [
            StreamingConv1d(
                cfg.dimension, cfg.stage_channels(stages), cfg.last_kernel_size, weight_norm=wn
            )
        ]
        if cfg.lstm_layers > 0:
            layers.append(StreamingLSTM(cfg.stage_channels(stages), cfg.lstm_layers))
        for stage in reversed(range(stages)):
            ratio = cfg.ratios[stage]
            dim, out_dim = cfg.stage_channels(stage + 1), cfg.stage_channels(stage)
            layers += [
                nn.ELU(),
                StreamingConvTranspose1d(dim, out_dim, 2 * ratio, stride=ratio, weight_norm=wn),
            ]
            layers += _residual_units(cfg, out_dim)
        layers += [
            nn.ELU(),
            StreamingConv1d(cfg.stage_channels(0), cfg.channels, cfg.kernel_size, weight_norm=wn),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, latent: Tensor) -> Tensor:
        return self.layers(latent)  # (B, dimension, F) -> (B, channels, F * hop_length)
