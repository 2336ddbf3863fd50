"""Augmentation of normalised log-mel features (B, M, F) for the recognizer.

- `FrequencyWarp`: voices that training never heard move their formants. A random monotone
  warp of the mel axis per utterance: one global factor (vocal-tract length, as VTLP) times
  smooth local factors between a few knots (formants that move on their own, as espeak-ng's
  variants scale each formant separately). Per-bin mean/variance normalisation already
  cancels any fixed spectral tilt or equaliser, so warping is what is left to cover.
- `MelAxisWarp`: one fixed global warp, for decoding at several vocal-tract factors.
- `SpecAugment`: frequency and time masks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from telugu_s2s.modules.features import MelConfig, mel_band_edges_hz


def mel_centers_hz(mel: MelConfig) -> torch.Tensor:
    """Centre frequency (M,) of each mel band, in Hz."""
    f_max = mel.f_max or mel.sample_rate / 2
    return mel_band_edges_hz(mel.n_mels, mel.f_min, f_max, mel.mel_scale)[1:-1].float()


class FrequencyWarp(nn.Module):
    def __init__(self, mel: MelConfig, prob: float = 0.8, global_range: tuple = (0.85, 1.18),
                 local: float = 0.12, knots: int = 5):  # fmt: skip
        super().__init__()
        self.prob, self.local, self.knots = prob, local, knots
        self.log_range = (math.log(global_range[0]), math.log(global_range[1]))
        self.register_buffer("centers", mel_centers_hz(mel), persistent=False)  # (M,)

    def source_bins(self, batch: int) -> torch.Tensor:
        """Fractional source bin (B, M) of every output bin: out[m] = in[source[m]]."""
        lo, hi = self.log_range
        scale = torch.empty(batch, 1).uniform_(lo, hi)  # (B, 1) log global factor
        knots = torch.empty(batch, 1, self.knots).uniform_(-self.local, self.local)
        local = nn.functional.interpolate(
            knots, size=self.centers.shape[0], mode="linear", align_corners=True
        )[:, 0]  # (B, M) fmt: skip
        return source_bins(self.centers, torch.exp(scale + local).to(self.centers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, F) -> (B, M, F)
        warped = warp_bins(x, self.source_bins(x.shape[0]))
        keep = (torch.rand(x.shape[0], 1, 1, device=x.device) >= self.prob).to(x.dtype)
        return keep * x + (1 - keep) * warped


class MelAxisWarp(nn.Module):
    """One fixed vocal-tract factor: formants at f are read as if at `alpha` * f. The
    recognizer decodes with a few of these and keeps its most confident reading (a
    vocal-tract length normalisation for voices it never heard)."""

    def __init__(self, mel: MelConfig, alpha: float):
        super().__init__()
        centers = mel_centers_hz(mel)
        alpha_per_bin = torch.full((1, centers.shape[0]), float(alpha))
        self.register_buffer("source", source_bins(centers, alpha_per_bin), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, F) -> (B, M, F)
        return warp_bins(x, self.source.expand(x.shape[0], -1))


def source_bins(centers: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Fractional source bin (B, M) of each output bin when formants move from f to
    alpha * f; `centers` (M,) in Hz, `alpha` (B, M) per bin, kept monotone."""
    source_hz = torch.cummax(centers[None] / alpha, dim=1).values.clamp(centers[0], centers[-1])
    upper = torch.searchsorted(centers, source_hz.contiguous()).clamp(1, centers.shape[0] - 1)
    below, above = centers[upper - 1], centers[upper]
    return upper - 1 + (source_hz - below) / (above - below)


def warp_bins(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Features (B, M, F) read at fractional mel bins `source` (B, M), linearly."""
    b, m, f = x.shape
    low = source.floor().long().clamp(0, m - 1)
    high = (low + 1).clamp(max=m - 1)
    weight = (source - low)[..., None].to(x.dtype)  # (B, M, 1)
    pick = lambda idx: x.gather(1, idx[..., None].expand(b, m, f))  # noqa: E731
    return pick(low) * (1 - weight) + pick(high) * weight


class SpecAugment(nn.Module):
    """Zero `freq_masks` mel bands of up to `freq_width` and `time_masks` spans of up to
    `time_fraction` of the frames, per utterance (features are mean-normalised, so 0 = mean)."""

    def __init__(self, freq_masks: int = 2, freq_width: int = 12, time_masks: int = 4,
                 time_fraction: float = 0.05):  # fmt: skip
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_fraction = time_masks, time_fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, F) -> (B, M, F)
        b, m, f = x.shape
        x = x.clone()
        for i in range(b):
            for _ in range(self.freq_masks):
                w = int(torch.randint(0, self.freq_width + 1, ()))
                s = int(torch.randint(0, max(1, m - w), ()))
                x[i, s : s + w] = 0
            width = max(1, int(self.time_fraction * f))
            for _ in range(self.time_masks):
                w = int(torch.randint(0, width + 1, ()))
                s = int(torch.randint(0, max(1, f - w), ()))
                x[i, :, s : s + w] = 0
        return x
