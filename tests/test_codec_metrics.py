"""Codec metrics: losses and scores behave as their definitions say; the split evaluation and
the Opus baseline of the benchmark measure what they claim."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from telugu_s2s.metrics.audio import (
    MelDistance,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    pesq_available,
    pesq_wb,
    si_snr,
    stoi,
)
from telugu_s2s.metrics.codec import (
    Clip,
    ReconstructionScorer,
    evaluate_tokenizer,
    evaluate_transform,
    load_clips,
)
from telugu_s2s.models.codec import CodecConfig, CodecModel
from telugu_s2s.paths import REPO_ROOT

SR = 16000


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated harmonic signal with pauses: enough for STOI and PESQ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voice = sum(np.sin(h * phase) / h for h in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5  # syllables and gaps
    return (0.1 * voice * envelope + 1e-3 * rng.standard_normal(t.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    return torch.from_numpy(speechlike())[None, None]  # (1, 1, T)


def noisy(x: torch.Tensor, snr_db: float, seed: int = 1) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    noise = noise * x.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() * 10 ** (-snr_db / 20)
    return x + noise


def test_si_snr_matches_the_added_noise_and_ignores_scale(clean) -> None:
    assert float(si_snr(noisy(clean, 10.0), clean)) == pytest.approx(10.0, abs=0.3)
    assert float(si_snr(noisy(clean, 0.0), clean)) == pytest.approx(0.0, abs=0.3)
    assert float(si_snr(0.25 * clean, clean)) > 60  # scale-invariant
    assert float(si_snr(-clean, clean)) > 60  # sign flips are a scale too


def test_mel_distance_and_losses_are_zero_only_for_a_perfect_copy(clean) -> None:
    for metric in (MelDistance(SR), MultiScaleMelLoss(SR), MultiResolutionSTFTLoss()):
        same = metric(clean, clean)
        slightly, very = metric(noisy(clean, 20.0), clean), metric(noisy(clean, 0.0), clean)
        assert float(same.max()) < 1e-5
        assert 0 < float(slightly.mean()) < float(very.mean())


def test_stft_loss_has_gradients(clean) -> None:
    estimate = noisy(clean, 10.0).requires_grad_()
    MultiResolutionSTFTLoss()(estimate, clean).backward()
    assert estimate.grad is not None and estimate.grad.abs().sum() > 0


def test_stoi_orders_by_noise(clean) -> None:
    clean_score = float(stoi(clean, clean, SR))
    assert clean_score > 0.99
    assert (
        float(stoi(noisy(clean, 0.0), clean, SR))
        < float(stoi(noisy(clean, 15.0), clean, SR))
        < clean_score
    )


@pytest.mark.skipif(not pesq_available(), reason="pesq is not installed")
def test_pesq_orders_by_noise(clean) -> None:
    scores = [float(pesq_wb(x, clean, SR)) for x in (clean, noisy(clean, 20.0), noisy(clean, 0.0))]
    assert scores[0] > 4.0 and scores[0] > scores[1] > scores[2] >= 1.0


def test_evaluate_transform_scores_identity_and_silence() -> None:
    clips = [Clip(str(i), "spk", speechlike(1.5, seed=i)) for i in range(2)]
    scorer = ReconstructionScorer(SR, with_pesq=False)
    perfect = evaluate_transform(lambda x: x.copy(), clips, scorer)
    # A short output is zero-padded to the reference's length before scoring.
    broken = evaluate_transform(lambda x: np.zeros_like(x[:-100]), clips, scorer)
    assert perfect["mel_distance"] < 1e-5 and perfect["stoi"] > 0.99 and perfect["clips"] == 2
    assert broken["mel_distance"] > 1.0 and broken["si_snr"] < perfect["si_snr"]


def test_evaluate_tokenizer_counts_codes_and_bitrate() -> None:
    torch.manual_seed(0)
    codec = CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=64)).eval()
    clips = [Clip(str(i), "spk", speechlike(1.0 + 0.3 * i, seed=i)) for i in range(3)]
    scorer = ReconstructionScorer(SR, with_stoi=False, with_pesq=False)
    result = evaluate_tokenizer(codec, clips, num_codebooks=3, scorer=scorer)
    frames = sum(math.ceil(c.audio.shape[0] / codec.frame_size) for c in clips)
    assert result["frames"] == frames
    assert result["bitrate"] == 12.5 * 3 * 6  # 64 entries = 6 bits
    assert len(result["codebook_usage"]) == len(result["codebook_perplexity"]) == 3
    for usage, perplexity in zip(
        result["codebook_usage"], result["codebook_perplexity"], strict=True
    ):
        assert 1 / 64 <= usage <= min(1.0, frames / 64)  # at least one code, at most one per frame
        assert 1.0 <= perplexity <= usage * 64 + 1e-4  # exp(entropy) <= number of codes used


def test_load_clips_takes_a_fixed_subset_with_every_voice(tiny_dataset) -> None:
    everything = load_clips(tiny_dataset, "test")
    subset = load_clips(tiny_dataset, "test", max_clips=12)
    again = load_clips(tiny_dataset, "test", max_clips=12)
    assert len(subset) == 12 and [c.id for c in subset] == [c.id for c in again]
    # The subset spans the split from its first clip to its last.
    assert subset[0].id == everything[0].id and subset[-1].id == everything[-1].id
    assert all(c.audio.dtype == np.float32 and c.audio.ndim == 1 for c in subset)
    # A generated dialog is voiced by one user and one assistant voice: the spread covers several.
    assert len({c.speaker for c in subset}) >= 3 and all(c.text for c in subset)


def _benchmark_module():
    spec = importlib.util.spec_from_file_location(
        "codec_benchmark", REPO_ROOT / "benchmarks" / "codec.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("bitrate", [6000, 12000])
def test_opus_baseline_is_aligned_and_near_its_bitrate(bitrate: int) -> None:
    pytest.importorskip("av")
    bench = _benchmark_module()
    audio = speechlike(3.0)
    opus = bench.OpusCodec(bitrate)
    packets, pre_skip = opus.encode(audio)
    decoded = opus.decode(packets, pre_skip, audio.shape[0])
    assert decoded.shape == audio.shape
    # Aligned: the cross-correlation peaks within 2 samples of lag 0 (the 104-sample
    # pre-skip at 16 kHz was removed; low-rate Opus does not keep the phase exactly).
    lags = range(-150, 151)
    mid = slice(1000, audio.shape[0] - 1000)
    corr = [np.dot(np.roll(decoded, -lag)[mid], audio[mid]) for lag in lags]
    assert abs(lags[int(np.argmax(corr))]) <= 2
    measured = 8 * sum(len(p) for p in packets) / 3.0
    assert 0.5 * bitrate < measured < 1.5 * bitrate


def test_voice_preservation_sees_a_lost_pitch() -> None:
    """Identity keeps every voice decision and every pitch; playing 1.5x faster keeps none of
    the pitches (median F0 ratio 1.5). Clips of voices outside the bank are left out."""
    import soxr

    from telugu_s2s.checkpoint import load_pretrained
    from telugu_s2s.metrics.codec import voice_preservation
    from telugu_s2s.speakers import SpeakerBank

    speaker_dir = REPO_ROOT / "checkpoints" / "speaker"
    encoder, bank = load_pretrained(speaker_dir), SpeakerBank.load(speaker_dir)
    clips = [Clip(str(i), name, speechlike(seed=i)) for i, name in enumerate(bank.names)]
    clips.append(Clip("stranger", "user_01", speechlike(seed=9)))

    same = voice_preservation(lambda a: a, clips, encoder, bank)
    assert same["clips"] == len(bank.names)
    assert same["speaker_id_transformed"] == same["speaker_id_original"]
    assert same["f0_kept"] == 1.0 and same["f0_ratio_median"] == pytest.approx(1.0)

    faster = voice_preservation(lambda a: soxr.resample(a, SR, SR / 1.5), clips, encoder, bank)
    assert faster["f0_kept"] == 0.0
    assert faster["f0_ratio_median"] == pytest.approx(1.5, rel=0.05)
    with pytest.raises(ValueError, match="no clips"):
        voice_preservation(lambda a: a, clips[-1:], encoder, bank)


def test_f0_off_flags_a_shifted_pitch_and_skips_unvoiced_references() -> None:
    from telugu_s2s.metrics.audio import f0_off

    voice = torch.from_numpy(speechlike(seed=3))  # F0 around 120 Hz
    t = torch.arange(voice.shape[0]) / SR
    tone = lambda f: 0.1 * torch.sin(2 * np.pi * f * t)  # noqa: E731
    estimate = torch.stack([voice, tone(240.0), tone(125.0)])  # (3, T): kept, doubled, kept
    reference = torch.stack([voice, tone(120.0), torch.zeros_like(voice)])  # the last is silent
    off = f0_off(estimate, reference, SR)
    assert off[0] == 0 and off[1] == 1 and math.isnan(off[2])
