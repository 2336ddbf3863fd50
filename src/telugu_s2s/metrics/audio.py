"""Reconstruction metrics on (B, 1, T) or (B, T) waveforms."""

from __future__ import annotations

import torch
from torch import nn

from telugu_s2s.modules.features import MelSpectrogram


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)  # (B, T)


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SNR in dB per item, (B,)."""
    est, ref = _flat(estimate), _flat(reference)
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref  # (B, T)
    noise = est - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


class MelDistance(nn.Module):
    """Mean absolute difference of log-mel spectrograms (80 mels, 64 ms window), per item (B,)."""

    def __init__(self, sample_rate: int = 16000):
        super().__init__()
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=1024, win_length=1024, hop_length=256, n_mels=80)

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return (self.mel(_flat(estimate)) - self.mel(_flat(reference))).abs().mean(dim=(1, 2))


class MultiScaleMelLoss(nn.Module):
    """Log-mel L1 at several STFT resolutions (window 2^i), the usual codec reconstruction loss."""

    def __init__(self, sample_rate: int = 16000, windows: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)):
        super().__init__()
        self.mels = nn.ModuleList(
            MelSpectrogram(
                sample_rate=sample_rate, n_fft=w, win_length=w, hop_length=w // 4,
                n_mels=min(80, w // 8), f_min=0.0,
            )
            for w in windows
        )  # fmt: skip

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        est, ref = _flat(estimate), _flat(reference)
        return sum((m(est) - m(ref)).abs().mean() for m in self.mels) / len(self.mels)
