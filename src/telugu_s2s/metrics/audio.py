"""Reconstruction losses and metrics on (B, 1, T) or (B, T) waveforms.

Differentiable (training losses): `MultiScaleMelLoss`, `MultiResolutionSTFTLoss`.
Metrics (evaluation): `si_snr`, `MelDistance`, `stoi` (pystoi) and `pesq_wb` (pesq, optional).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from telugu_s2s.modules.features import MelSpectrogram


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)  # (B, T)


def si_snr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
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
        self.mel = MelSpectrogram(
            sample_rate=sample_rate, n_fft=1024, win_length=1024, hop_length=256, n_mels=80
        )

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        return (self.mel(_flat(estimate)) - self.mel(_flat(reference))).abs().mean(dim=(1, 2))


class MultiScaleMelLoss(nn.Module):
    """Log-mel L1 at several STFT resolutions (window 2^i), the usual codec reconstruction loss."""

    def __init__(
        self, sample_rate: int = 16000, windows: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    ):
        super().__init__()
        self.mels = nn.ModuleList(
            MelSpectrogram(
                sample_rate=sample_rate,
                n_fft=w,
                win_length=w,
                hop_length=w // 4,
                n_mels=min(80, w // 8),
                f_min=0.0,
            )
            for w in windows
        )

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        est, ref = _flat(estimate), _flat(reference)
        return sum((m(est) - m(ref)).abs().mean() for m in self.mels) / len(self.mels)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Parallel WaveGAN).

    Linear-frequency detail the mel losses blur (harmonics above 1 kHz) shows up here.
    """

    def __init__(self, n_ffts: tuple[int, ...] = (256, 512, 1024), eps: float = 1e-5):
        super().__init__()
        self.n_ffts, self.eps = tuple(n_ffts), eps
        for n in self.n_ffts:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def _magnitude(self, x: Tensor, n_fft: int) -> Tensor:
        window = getattr(self, f"window_{n_fft}")
        spec = torch.stft(
            x, n_fft, n_fft // 4, window=window, return_complex=True
        )  # (B, F, frames)
        return spec.abs().clamp(min=self.eps)

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        est, ref = _flat(estimate).float(), _flat(reference).float()
        total = est.new_zeros(())
        for n in self.n_ffts:
            est_mag, ref_mag = self._magnitude(est, n), self._magnitude(ref, n)  # (B, F, frames)
            convergence = torch.linalg.norm(ref_mag - est_mag) / torch.linalg.norm(ref_mag)
            log_magnitude = (est_mag.log() - ref_mag.log()).abs().mean()
            total = total + convergence + log_magnitude
        return total / len(self.n_ffts)


def _numpy_pairs(estimate: Tensor, reference: Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    est = _flat(estimate).detach().cpu().double().numpy()
    ref = _flat(reference).detach().cpu().double().numpy()
    return list(zip(est, ref, strict=True))


def stoi(
    estimate: Tensor, reference: Tensor, sample_rate: int = 16000, extended: bool = False
) -> Tensor:
    """Short-time objective intelligibility per item (B,), 0..1 (pystoi; resamples to 10 kHz).

    STOI ignores silent frames, so an all-silent reference has no score: NaN there.
    """
    from pystoi import stoi as pystoi

    scores = []
    for est, ref in _numpy_pairs(estimate, reference):
        try:
            scores.append(float(pystoi(ref, est, sample_rate, extended=extended)))
        except (ValueError, ZeroDivisionError, IndexError):  # too short or silent
            scores.append(math.nan)
    return torch.tensor(scores)


def pesq_available() -> bool:
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def pesq_wb(estimate: Tensor, reference: Tensor, sample_rate: int = 16000) -> Tensor:
    """Wide-band PESQ (MOS-LQO, about 1.0..4.6) per item (B,); NaN where PESQ refuses the clip.

    Needs the optional `pesq` package and 16 kHz audio.
    """
    from pesq import PesqError, pesq

    if sample_rate != 16000:
        raise ValueError(f"wide-band PESQ needs 16 kHz audio, got {sample_rate}")
    scores = []
    for est, ref in _numpy_pairs(estimate, reference):
        try:
            scores.append(float(pesq(sample_rate, ref, est, "wb")))
        except PesqError:  # e.g. no utterance detected in a short or silent clip
            scores.append(math.nan)
    return torch.tensor(scores)


F0_TOLERANCE = 0.15  # relative: how far a median F0 may drift and still count as the voice's


def f0_off(
    estimate: Tensor, reference: Tensor, sample_rate: int = 16000, tolerance: float = F0_TOLERANCE
) -> Tensor:
    """Per item (B,): 1 where the estimate's median F0 is more than `tolerance` (relative) off the
    reference's or unvoiced, 0 where it is kept, NaN where the reference itself is unvoiced."""
    from telugu_s2s.data.voices import median_f0

    out = []
    for est, ref in _numpy_pairs(estimate, reference):
        ref_f0 = median_f0(ref, sample_rate)
        ratio = median_f0(est, sample_rate) / ref_f0
        out.append(math.nan if math.isnan(ref_f0) else float(not abs(ratio - 1.0) <= tolerance))
    return torch.tensor(out)
