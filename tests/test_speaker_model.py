"""Speaker encoder, AAM-softmax head, log-mel frontend and waveform augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.data.augment import AugmentConfig, add_noise, augment, change_speed
from telugu_s2s.models.speaker import AAMSoftmax, SpeakerEncoder, SpeakerEncoderConfig
from telugu_s2s.modules.features import MelConfig, MelSpectrogram

torch.set_num_threads(1)


def tiny_config() -> SpeakerEncoderConfig:
    return SpeakerEncoderConfig(
        mel=MelConfig(n_mels=24, pad_mode="constant"), channels=32, se_channels=8,
        mfa_channels=48, attention_channels=16, embedding_dim=192,
    )  # fmt: skip


# ---------------------------------------------------------------- log-mel vs numpy


def _np_hz_to_mel(hz, scale):
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    lin = hz / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(hz, 1e-10) / min_log_hz) / log_step
    return np.where(hz >= min_log_hz, log, lin)


def _np_mel_to_hz(mel, scale):
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(
        mel >= min_log_mel, min_log_hz * np.exp(log_step * (mel - min_log_mel)), mel * f_sp
    )


def numpy_log_mel(audio: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Independent loop-and-rfft reference of the same definition (librosa-style)."""
    n_fft, hop, win = cfg.n_fft, cfg.hop_length, cfg.win_length or cfg.n_fft
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(win) / win
    )  # periodic Hann
    padded = np.pad(audio, n_fft // 2, mode=cfg.pad_mode) if cfg.center else audio
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** cfg.power  # (frames, F)

    f_max = cfg.f_max or cfg.sample_rate / 2
    edges = _np_mel_to_hz(
        np.linspace(
            _np_hz_to_mel(cfg.f_min, cfg.mel_scale),
            _np_hz_to_mel(f_max, cfg.mel_scale),
            cfg.n_mels + 2,
        ),
        cfg.mel_scale,
    )
    fft_hz = np.linspace(0, cfg.sample_rate / 2, n_fft // 2 + 1)
    filters = np.zeros((cfg.n_mels, len(fft_hz)))
    for m in range(cfg.n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        filters[m] = np.maximum(
            0, np.minimum((fft_hz - lo) / (mid - lo), (hi - fft_hz) / (hi - mid))
        )
        if cfg.norm == "slaney":
            filters[m] *= 2.0 / (hi - lo)
    return np.log(np.maximum(filters @ power.T, cfg.log_floor))  # (n_mels, frames)


@pytest.mark.parametrize(
    "cfg",
    [
        MelConfig(),
        MelConfig(mel_scale="htk", norm=None, n_fft=256, win_length=None, hop_length=64, n_mels=40,
                  f_min=0.0, f_max=6000.0, power=1.0, pad_mode="constant"),
        MelConfig(n_fft=400, win_length=320, hop_length=100, center=False, n_mels=64),
    ],
    ids=["slaney-default", "htk-magnitude", "uncentred"],
)  # fmt: skip
def test_mel_matches_numpy_reference(cfg: MelConfig) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(8000) / cfg.sample_rate
    audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)
    ours = MelSpectrogram(cfg)(torch.tensor(audio, dtype=torch.float32)[None]).double().numpy()[0]
    reference = numpy_log_mel(audio, cfg)
    assert ours.shape == reference.shape == (cfg.n_mels, MelSpectrogram(cfg).num_frames(8000))
    np.testing.assert_allclose(ours, reference, atol=2e-3)  # float32 STFT vs float64


def test_mel_peaks_at_tone_and_accepts_channel_dim() -> None:
    mel = MelSpectrogram(MelConfig(log=False))
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 1000 * t)  # (T,)
    spec = mel(tone[None, None])  # (1, n_mels, frames)
    assert spec.shape[:2] == (1, 80)
    peak_bin = int(spec[0].mean(dim=-1).argmax())
    centres = MelSpectrogram(MelConfig()).filters.argmax(dim=-1)  # FFT bin of each filter's peak
    assert abs(int(centres[peak_bin]) * 16000 / 512 - 1000) < 80
    assert "window" not in mel.state_dict()  # derived buffers stay out of checkpoints


# ---------------------------------------------------------------- encoder


def test_embeddings_are_unit_norm_with_default_size() -> None:
    encoder = SpeakerEncoder(SpeakerEncoderConfig())
    params = sum(p.numel() for p in encoder.parameters())
    assert 0.5e6 <= params <= 1.5e6  # sized for the 20-minute CPU training
    embeddings = encoder(0.1 * torch.randn(3, 1, 8000))
    assert embeddings.shape == (3, 192)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(3))


def test_padded_batch_gives_the_same_embedding_as_the_unpadded_clip() -> None:
    torch.manual_seed(0)
    encoder = SpeakerEncoder(tiny_config())
    encoder.train()
    encoder(0.1 * torch.randn(4, 12000))  # move BatchNorm stats away from identity
    encoder.eval()
    clips = [0.1 * torch.randn(n) for n in (16000, 9137, 5000)]
    padded = torch.zeros(3, 16000)
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = clip
        padded[i, len(clip) :] = 5.0  # garbage padding must be ignored
    lengths = torch.tensor([len(c) for c in clips])
    with torch.no_grad():
        batched = encoder(padded, lengths)  # (3, D)
        alone = torch.cat([encoder(c[None]) for c in clips])  # (3, D)
        unmasked = encoder(padded)  # without lengths the padding counts
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    assert (unmasked[1:] - alone[1:]).abs().max() > 1e-2


def test_encoder_rejects_bad_lengths() -> None:
    encoder = SpeakerEncoder(tiny_config())
    with pytest.raises(ValueError, match="lengths"):
        encoder(torch.zeros(2, 4000), torch.tensor([4000, 4001]))


def test_encoder_round_trips_through_save_pretrained(tmp_path) -> None:
    encoder = SpeakerEncoder(tiny_config()).eval()
    save_pretrained(encoder, tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.cfg == encoder.cfg  # nested MelConfig and tuple dilations survive JSON
    audio = 0.1 * torch.randn(2, 6000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio), encoder(audio))


# ---------------------------------------------------------------- AAM-softmax


def test_aam_softmax_learns_a_separable_toy_problem() -> None:
    torch.manual_seed(0)
    centres = torch.randn(4, 16) * 3
    labels = torch.arange(4).repeat_interleave(32)  # (128,)
    inputs = centres[labels] + torch.randn(128, 16)  # (128, 16)
    projection = torch.nn.Linear(16, 8)
    head = AAMSoftmax(8, num_classes=4, margin=0.2, scale=30.0)
    optimiser = torch.optim.Adam([*projection.parameters(), *head.parameters()], lr=0.05)
    losses = []
    for _ in range(30):
        loss, logits = head(projection(inputs), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert (logits.argmax(dim=-1) == labels).float().mean() == 1.0


def test_aam_margin_penalises_only_the_target_logit() -> None:
    torch.manual_seed(1)
    head = AAMSoftmax(8, num_classes=3, margin=0.3, scale=10.0)
    embeddings, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    loss, logits = head(embeddings, labels)
    head.margin = 0.0
    loss_without_margin, logits_without_margin = head(embeddings, labels)
    torch.testing.assert_close(logits, logits_without_margin)  # returned logits are margin-free
    assert loss > loss_without_margin
    assert logits.abs().max() <= 10.0 + 1e-4  # scale * cosine


# ---------------------------------------------------------------- augmentation


def test_augment_keeps_shape_and_is_reproducible() -> None:
    audio = 0.1 * torch.randn(3, 1, 8000)
    first = augment(audio, torch.Generator().manual_seed(7))
    second = augment(audio, torch.Generator().manual_seed(7))
    assert first.shape == audio.shape
    torch.testing.assert_close(first, second)
    assert not torch.allclose(first, augment(audio, torch.Generator().manual_seed(8)))


def test_augment_gain_only_scales_by_the_drawn_gain() -> None:
    cfg = AugmentConfig(speed_prob=0.0, noise_prob=0.0, gain_prob=1.0, gain_db=(-6.0, -6.0))
    audio = torch.randn(4000)
    torch.testing.assert_close(augment(audio, torch.Generator(), cfg), audio * 10 ** (-6 / 20))


def test_add_noise_hits_the_requested_snr() -> None:
    g = torch.Generator().manual_seed(0)
    audio = torch.sin(torch.arange(16000) * 0.05)
    for slope in (0.0, 1.0, 2.0):
        noise = add_noise(audio, snr_db=10.0, slope=slope, generator=g) - audio
        snr = 10 * torch.log10(audio.pow(2).mean() / noise.pow(2).mean())
        assert abs(snr.item() - 10.0) < 0.01


def test_change_speed_scales_frequency_and_duration() -> None:
    sr = 16000
    tone = torch.sin(2 * math.pi * 500 * torch.arange(sr) / sr)  # 1 s at 500 Hz
    faster = change_speed(tone, 1.1)
    assert faster.shape[0] == round(sr / 1.1)
    peak_hz = torch.fft.rfft(faster).abs().argmax().item() * sr / faster.shape[0]
    assert abs(peak_hz - 550) < 3
