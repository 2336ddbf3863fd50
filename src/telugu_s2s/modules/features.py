"""Log-mel spectrogram frontend built on `torch.stft` (no torchaudio).

Shared by the speaker encoder (its input features) and the codec (its multi-scale mel
loss), so it is a small general module: every parameter lives in `MelConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int | None = 400  # None = n_fft; shorter windows are zero-padded to n_fft
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float | None = None  # None = Nyquist
    power: float = 2.0  # 1 = magnitude, 2 = power
    mel_scale: str = "slaney"  # "slaney" (librosa default) or "htk"
    norm: str | None = "slaney"  # "slaney" = unit-area triangles, None = unit-peak
    center: bool = True
    pad_mode: str = "reflect"  # "constant" keeps zero-padded batches exact at clip ends
    log: bool = True
    log_floor: float = 1e-5  # log(max(mel, floor)); avoids -inf on silence


def hz_to_mel(hz: torch.Tensor, mel_scale: str = "slaney") -> torch.Tensor:
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    # Slaney: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = hz / f_sp
    logarithmic = min_log_mel + torch.log(torch.clamp(hz, min=min_log_hz) / min_log_hz) / log_step
    return torch.where(hz >= min_log_hz, logarithmic, linear)


def mel_to_hz(mel: torch.Tensor, mel_scale: str = "slaney") -> torch.Tensor:
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {mel_scale!r}")
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = mel * f_sp
    logarithmic = min_log_hz * torch.exp(log_step * (mel - min_log_mel))
    return torch.where(mel >= min_log_mel, logarithmic, linear)


def mel_band_edges_hz(n_mels: int, f_min: float, f_max: float,
                      mel_scale: str = "slaney") -> torch.Tensor:  # fmt: skip
    """Edges of the triangular mel bands in Hz (n_mels + 2,), float64: band m rises from
    edge m, peaks at edge m + 1 (its centre) and falls to edge m + 2."""
    mel_edges = torch.linspace(
        hz_to_mel(torch.tensor(f_min, dtype=torch.float64), mel_scale),
        hz_to_mel(torch.tensor(f_max, dtype=torch.float64), mel_scale),
        n_mels + 2,
        dtype=torch.float64,
    )
    return mel_to_hz(mel_edges, mel_scale)


def mel_filterbank(
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "slaney",
    norm: str | None = "slaney",
) -> torch.Tensor:
    """Triangular mel filters, shape (n_mels, n_fft // 2 + 1), in float64."""
    f_max = sample_rate / 2.0 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2.0:
        raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2}, got {f_min}, {f_max}")
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    hz_edges = mel_band_edges_hz(n_mels, f_min, f_max, mel_scale)  # (n_mels + 2,)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)  # (n_mels, F)
    falling = (upper - fft_hz[None, :]) / (upper - centre)  # (n_mels, F)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mels, F)
    if norm == "slaney":
        filters = filters * (2.0 / (upper - lower))  # equal area per filter
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    return filters


class MelSpectrogram(nn.Module):
    """Audio (B, T), (B, 1, T) or (T,) -> (log-)mel spectrogram (B, n_mels, frames)."""

    def __init__(self, cfg: MelConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = cfg or MelConfig()
        if overrides:
            cfg = MelConfig(**{**cfg.__dict__, **overrides})
        self.cfg = cfg
        win_length = cfg.win_length or cfg.n_fft
        if win_length > cfg.n_fft:
            raise ValueError(f"win_length {win_length} > n_fft {cfg.n_fft}")
        # Buffers are derived from cfg, so they stay out of state_dicts (persistent=False).
        window = torch.hann_window(win_length, periodic=True)  # (W,)
        self.register_buffer("window", window, persistent=False)
        filters = mel_filterbank(
            cfg.n_fft, cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.f_max, cfg.mel_scale, cfg.norm
        )
        self.register_buffer("filters", filters.float(), persistent=False)  # (n_mels, F)

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames produced for clips of `num_samples` (frames that see only real samples + pad)."""
        cfg = self.cfg
        if cfg.center:
            return num_samples // cfg.hop_length + 1
        return (num_samples - cfg.n_fft) // cfg.hop_length + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if audio.dim() == 3:
            if audio.shape[1] != 1:
                raise ValueError(f"expected mono audio (B, 1, T), got {tuple(audio.shape)}")
            audio = audio[:, 0]  # (B, T)
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio[None]  # (1, T)
        spec = torch.stft(
            audio.float(),
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=self.window.shape[0],
            window=self.window,
            center=cfg.center,
            pad_mode=cfg.pad_mode,
            return_complex=True,
        )  # (B, F, frames)
        spec = spec.abs()
        if cfg.power != 1.0:
            spec = spec.pow(cfg.power)
        mel = torch.einsum("mf,bft->bmt", self.filters, spec)  # (B, n_mels, frames)
        if cfg.log:
            mel = torch.log(torch.clamp(mel, min=cfg.log_floor))
        return mel[0] if squeeze else mel
