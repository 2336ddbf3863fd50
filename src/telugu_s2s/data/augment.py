"""Waveform augmentation: speed, gain and coloured noise (speaker), plus band limits and
reverberation for the recognizer's channel robustness (`channel_augment`).

Everything is torch (runs in DataLoader workers or on the training device) and draws
its randomness from an explicit `torch.Generator`, so a seeded run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    speed_prob: float = 0.5
    speed: tuple[float, float] = (0.92, 1.08)  # playback-rate factor (also shifts pitch)
    gain_prob: float = 0.8
    gain_db: tuple[float, float] = (-12.0, 6.0)
    noise_prob: float = 0.6
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_slope: tuple[float, float] = (0.0, 2.0)  # power ~ 1/f^slope: 0 white, 1 pink, 2 brown


def _uniform(bounds: tuple[float, float], generator: torch.Generator | None) -> float:
    low, high = bounds
    return low + (high - low) * torch.rand((), generator=generator).item()


def _happens(prob: float, generator: torch.Generator | None) -> bool:
    return torch.rand((), generator=generator).item() < prob


def change_speed(audio: torch.Tensor, factor: float) -> torch.Tensor:
    """Resample audio (T,) so that it plays `factor` times faster: -> (round(T / factor),)."""
    new_length = max(1, round(audio.shape[-1] / factor))
    resampled = F.interpolate(
        audio[None, None], size=new_length, mode="linear", align_corners=False
    )
    return resampled[0, 0]  # (T',)


def fit_length(audio: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crop or zero-pad audio (T,) at the end to (num_samples,)."""
    if audio.shape[-1] >= num_samples:
        return audio[:num_samples]
    return F.pad(audio, (0, num_samples - audio.shape[-1]))


def apply_gain(audio: torch.Tensor, gain_db: float) -> torch.Tensor:
    return audio * 10.0 ** (gain_db / 20.0)


def coloured_noise(
    num_samples: int, slope: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Unit-RMS noise (T,) whose power spectrum falls as 1 / f^slope."""
    white = torch.randn(num_samples, generator=generator, device=device)  # (T,)
    spectrum = torch.fft.rfft(white)  # (T // 2 + 1,)
    freqs = torch.arange(spectrum.shape[0], device=white.device).clamp(min=1).float()
    noise = torch.fft.irfft(spectrum / freqs.pow(slope / 2.0), n=num_samples)  # (T,)
    return noise / noise.pow(2).mean().sqrt().clamp(min=1e-8)


def add_noise(
    audio: torch.Tensor, snr_db: float, slope: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add coloured noise to audio (T,) at `snr_db` relative to the clip's mean power."""
    signal_power = audio.pow(2).mean()
    if signal_power <= 0:
        return audio  # silence has no SNR; leave it
    noise = coloured_noise(audio.shape[-1], slope, generator, audio.device)  # (T,), unit power
    return audio + noise * (signal_power / 10.0 ** (snr_db / 10.0)).sqrt()


def augment_one(
    audio: torch.Tensor, generator: torch.Generator | None, cfg: AugmentConfig
) -> torch.Tensor:
    """Randomly speed, gain and noise one clip (T,); the output keeps its length."""
    num_samples = audio.shape[-1]
    if _happens(cfg.speed_prob, generator):
        audio = fit_length(change_speed(audio, _uniform(cfg.speed, generator)), num_samples)
    if _happens(cfg.gain_prob, generator):
        audio = apply_gain(audio, _uniform(cfg.gain_db, generator))
    if _happens(cfg.noise_prob, generator):
        snr, slope = _uniform(cfg.snr_db, generator), _uniform(cfg.noise_slope, generator)
        audio = add_noise(audio, snr, slope, generator)
    return audio


def augment(
    audio: torch.Tensor, generator: torch.Generator | None = None, cfg: AugmentConfig | None = None
) -> torch.Tensor:
    """Augment audio (T,), (B, T) or (B, 1, T); each clip draws its own transforms. Same shape out."""
    cfg = cfg or AugmentConfig()
    flat = audio.reshape(-1, audio.shape[-1])  # (B', T)
    out = torch.stack([augment_one(clip, generator, cfg) for clip in flat])  # (B', T)
    return out.reshape(audio.shape)


# Channel augmentation for the recognizer: the voices and rooms a user brings.


@dataclass
class ChannelConfig:
    speed_prob: float = 0.5
    speed: tuple[float, float] = (0.88, 1.12)  # moves pitch, formants and tempo together
    band_prob: float = 0.3
    low_hz: tuple[float, float] = (50.0, 400.0)  # telephone-like band limits
    high_hz: tuple[float, float] = (3000.0, 7000.0)
    reverb_prob: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.8)  # seconds
    wet: tuple[float, float] = (0.2, 0.7)
    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-15.0, 6.0)
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 35.0)
    noise_slope: tuple[float, float] = (0.0, 2.0)


def band_limit(
    audio: torch.Tensor, low_hz: float, high_hz: float, sample_rate: int
) -> torch.Tensor:
    """Keep low_hz..high_hz of audio (T,), with 100 Hz raised-cosine edges."""
    spectrum = torch.fft.rfft(audio)  # (T // 2 + 1,)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    edge = 100.0
    rise = ((freqs - low_hz + edge) / edge).clamp(0, 1)
    fall = ((high_hz - freqs + edge) / edge).clamp(0, 1)
    gain = 0.5 - 0.5 * torch.cos(torch.pi * rise * fall)
    return torch.fft.irfft(spectrum * gain, n=audio.shape[-1])


def reverberate(
    audio: torch.Tensor, rt60: float, wet: float, sample_rate: int, generator=None
) -> torch.Tensor:
    """Convolve audio (T,) with a synthetic room: exponentially decaying noise after the
    direct path (-60 dB at `rt60` s); `wet` of the output is reverberant. Same length out."""
    n = max(2, int(rt60 * sample_rate))
    t = torch.arange(n, dtype=audio.dtype) / sample_rate
    tail = torch.randn(n, generator=generator, dtype=audio.dtype) * torch.exp(-6.9 * t / rt60)
    tail[0] = 0.0
    tail = tail / tail.norm().clamp(min=1e-8)
    size = audio.shape[-1] + n
    wet_audio = torch.fft.irfft(torch.fft.rfft(audio, size) * torch.fft.rfft(tail, size), size)
    wet_audio = wet_audio[: audio.shape[-1]]
    scale = audio.norm() / wet_audio.norm().clamp(min=1e-8)
    return (1 - wet) * audio + wet * wet_audio * scale


def channel_augment(
    audio: torch.Tensor, sample_rate: int, generator: torch.Generator | None = None,
    cfg: ChannelConfig | None = None,
) -> torch.Tensor:  # fmt: skip
    """Speed, band limit, reverb, gain and noise, each drawn for this clip (T,) -> (T',).

    Unlike `augment`, the length changes with the speed, so a transcript stays aligned."""
    cfg = cfg or ChannelConfig()
    if _happens(cfg.speed_prob, generator):
        audio = change_speed(audio, _uniform(cfg.speed, generator))
    if _happens(cfg.band_prob, generator):
        low, high = _uniform(cfg.low_hz, generator), _uniform(cfg.high_hz, generator)
        audio = band_limit(audio, low, min(high, sample_rate / 2), sample_rate)
    if _happens(cfg.reverb_prob, generator):
        rt60, wet = _uniform(cfg.rt60, generator), _uniform(cfg.wet, generator)
        audio = reverberate(audio, rt60, wet, sample_rate, generator)
    if _happens(cfg.gain_prob, generator):
        audio = apply_gain(audio, _uniform(cfg.gain_db, generator))
    if _happens(cfg.noise_prob, generator):
        snr, slope = _uniform(cfg.snr_db, generator), _uniform(cfg.noise_slope, generator)
        audio = add_noise(audio, snr, slope, generator)
    return audio.clamp(-1.0, 1.0)
