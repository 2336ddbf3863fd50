"""Whole-utterance evaluation of an audio codec on a dataset split.

One function scores any `audio -> audio` transform (`evaluate_transform`), so the neural
codec and a baseline such as Opus are measured on the same clips by the same code.
`evaluate_tokenizer` adds what only a tokenizer has: codebook usage and perplexity over
the split, and its bitrate. Used by `telugu_s2s.eval_codec`, `benchmarks/codec.py` and the
acceptance test of the trained codec.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from telugu_s2s.metrics.audio import (
    F0_TOLERANCE,
    MelDistance,
    pesq_available,
    pesq_wb,
    si_snr,
    stoi,
)
from telugu_s2s.modules.quantization import code_histogram, codebook_perplexity, codebook_usage


@dataclass
class Clip:
    id: str
    speaker: str
    audio: np.ndarray  # (T,) float32 at the evaluation sample rate
    text: str = ""  # what is said (for the judge's CER)


def load_clips(
    dataset_dir: str | Path,
    split: str = "test",
    max_clips: int | None = None,
    sample_rate: int = 16000,
    max_seconds: float | None = None,
) -> list[Clip]:
    """Utterances of a split; with `max_clips`, a fixed subset evenly spaced over the split.

    Even spacing over the stored order (dialog by dialog) covers every voice, the
    held-out user voices included, and gives the same clips on every call.
    """
    from telugu_s2s.data.datasets import decode_audio, load_split

    rows = load_split(dataset_dir, split)
    indices = range(len(rows))
    if max_clips is not None and max_clips < len(rows):
        indices = np.linspace(0, len(rows) - 1, max_clips).round().astype(int).tolist()
    clips = []
    for i in indices:
        row = rows[int(i)]
        wav = decode_audio(row["audio"], sample_rate, row.get("sampling_rate"))
        if max_seconds is not None:
            wav = wav[: int(max_seconds * sample_rate)]
        clips.append(
            Clip(str(row.get("id", i)), str(row.get("speaker", "")), wav, row.get("text") or "")
        )
    return clips


class ReconstructionScorer:
    """Per-clip quality of a reconstruction: mel distance, SI-SNR, STOI and wide-band PESQ."""

    def __init__(self, sample_rate: int = 16000, with_stoi: bool = True, with_pesq: bool = True):
        self.sample_rate = sample_rate
        self.mel_distance = MelDistance(sample_rate)
        self.with_stoi = with_stoi
        self.with_pesq = with_pesq and pesq_available() and sample_rate == 16000

    @torch.no_grad()
    def __call__(self, estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """estimate, reference (T,): scores of one clip (estimate trimmed or padded to T)."""
        est = _fit_length(np.asarray(estimate, dtype=np.float32), reference.shape[0])
        est_t, ref_t = torch.from_numpy(est)[None], torch.from_numpy(reference)[None]  # (1, T)
        scores = {
            "mel_distance": float(self.mel_distance(est_t, ref_t)[0]),
            "si_snr": float(si_snr(est_t, ref_t)[0]),
        }
        if self.with_stoi:
            scores["stoi"] = float(stoi(est_t, ref_t, self.sample_rate)[0])
        if self.with_pesq:
            scores["pesq"] = float(pesq_wb(est_t, ref_t, self.sample_rate)[0])
        return scores


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    return x[:length] if x.shape[0] >= length else np.pad(x, (0, length - x.shape[0]))


def _mean_scores(per_clip: list[dict[str, float]]) -> dict[str, float]:
    keys = per_clip[0].keys() if per_clip else []
    means = {}
    for key in keys:
        values = [s[key] for s in per_clip if not math.isnan(s[key])]
        means[key] = float(np.mean(values)) if values else math.nan
    return means


def evaluate_transform(
    transform: Callable[[np.ndarray], np.ndarray],
    clips: list[Clip],
    scorer: ReconstructionScorer | None = None,
) -> dict:
    """Mean scores of `transform(audio (T,)) -> reconstruction (about T,)` over the clips.

    Also the real-time factor of the transform (wall seconds per second of audio).
    """
    scorer = scorer or ReconstructionScorer()
    per_clip, seconds, audio_seconds = [], 0.0, 0.0
    for clip in clips:
        start = time.perf_counter()
        estimate = transform(clip.audio)
        seconds += time.perf_counter() - start
        audio_seconds += clip.audio.shape[0] / scorer.sample_rate
        per_clip.append(scorer(estimate, clip.audio))
    return {
        **_mean_scores(per_clip),
        "rtf": seconds / max(audio_seconds, 1e-9),
        "clips": len(clips),
    }


@torch.no_grad()
def evaluate_tokenizer(
    tokenizer,
    clips: list[Clip],
    num_codebooks: int | None = None,
    scorer: ReconstructionScorer | None = None,
) -> dict:
    """Quality of encode -> decode with the first `num_codebooks` codebooks (all by default),
    codebook usage and perplexity per codebook over the clips, and the bitrate."""
    k = num_codebooks or tokenizer.num_codebooks
    histogram = torch.zeros(k, tokenizer.cardinality, dtype=torch.long)  # (k, N)

    def count(codes: torch.Tensor) -> None:  # (1, k, F)
        histogram.add_(code_histogram(codes, tokenizer.cardinality))

    result = evaluate_transform(codec_round_trip(tokenizer, k, on_codes=count), clips, scorer)
    usage, perplexity = codebook_usage(histogram), codebook_perplexity(histogram)  # (k,)
    bits_per_code = math.log2(tokenizer.cardinality)
    result.update(
        num_codebooks=k,
        bitrate=tokenizer.frame_rate * k * bits_per_code,
        codebook_usage=usage.tolist(),
        codebook_perplexity=perplexity.tolist(),
        frames=int(histogram[0].sum()),
    )
    return result


@torch.no_grad()
def codebook_statistics(
    tokenizer, clips: list[Clip], num_codebooks: int | None = None, batch_size: int = 4
) -> dict:
    """Codebook usage and perplexity over the clips, encoding only, in padded batches.

    The encoder is causal, so right padding leaves every real frame's codes unchanged:
    only the frames that hold audio are counted. Much faster than `evaluate_tokenizer`
    on a whole split.
    """
    k = num_codebooks or tokenizer.num_codebooks
    histogram = torch.zeros(k, tokenizer.cardinality, dtype=torch.long)  # (k, N)
    ordered = sorted(clips, key=lambda c: c.audio.shape[0])  # similar lengths share a batch
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        longest = batch[-1].audio.shape[0]
        audio = torch.zeros(len(batch), 1, longest)  # (B, 1, T)
        for i, clip in enumerate(batch):
            audio[i, 0, : clip.audio.shape[0]] = torch.from_numpy(clip.audio)
        codes = tokenizer.encode(audio, num_codebooks=k)  # (B, k, F)
        for i, clip in enumerate(batch):
            frames = math.ceil(clip.audio.shape[0] / tokenizer.frame_size)
            histogram += code_histogram(codes[i : i + 1, :, :frames], tokenizer.cardinality)
    return {
        "codebook_usage": codebook_usage(histogram).tolist(),
        "codebook_perplexity": codebook_perplexity(histogram).tolist(),
        "frames": int(histogram[0].sum()),
    }


def codec_round_trip(
    tokenizer,
    num_codebooks: int | None = None,
    on_codes: Callable[[torch.Tensor], None] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """audio (T,) -> encode with the first `num_codebooks` codebooks -> decode (a transform);
    `on_codes` sees each clip's codes (1, k, F)."""

    @torch.no_grad()
    def round_trip(audio: np.ndarray) -> np.ndarray:
        codes = tokenizer.encode(torch.from_numpy(audio)[None, None], num_codebooks=num_codebooks)
        if on_codes is not None:
            on_codes(codes)
        return tokenizer.decode(codes)[0, 0].numpy()  # (F * frame_size,)

    return round_trip


def voice_preservation(
    transform: Callable[[np.ndarray], np.ndarray], clips: list[Clip], speaker_encoder, bank,
    sample_rate: int = 16000,
) -> dict:  # fmt: skip
    """Does `transform` (a codec round trip) keep who is speaking? On the clips of the bank's
    voices: how often the speaker encoder + bank identify the clip's voice in the original and
    in the transformed audio, and how often the transformed audio's median F0 (Praat) stays
    within 15% of the original's. Mel distance and STOI barely see a lost pitch; this does."""
    import soxr

    from telugu_s2s.data.voices import median_f0
    from telugu_s2s.speakers import embed_audio

    clips = [c for c in clips if c.speaker in bank.names]
    if not clips:
        raise ValueError(f"no clips of the bank's voices {bank.names}")
    rate = speaker_encoder.sample_rate
    originals = [c.audio for c in clips]
    outputs = [_fit_length(transform(c.audio), c.audio.shape[0]) for c in clips]
    identified = {}
    for name, audio in (("original", originals), ("transformed", outputs)):
        resampled = [
            soxr.resample(a, sample_rate, rate) if rate != sample_rate else a for a in audio
        ]
        scores = bank.scores(embed_audio(speaker_encoder, resampled))  # (M, voices)
        identified[name] = [bank.names[int(i)] for i in scores.argmax(dim=-1)]
    ratios = np.array([  # transformed / original median F0; NaN where either is unvoiced
        median_f0(x, sample_rate) / median_f0(o, sample_rate)
        for o, x in zip(originals, outputs, strict=True)
    ])  # fmt: skip
    truth = [c.speaker for c in clips]
    accuracy = lambda names: float(np.mean([a == b for a, b in zip(names, truth, strict=True)]))  # noqa: E731
    return {
        "clips": len(clips),
        "speaker_id_original": accuracy(identified["original"]),
        "speaker_id_transformed": accuracy(identified["transformed"]),
        "f0_kept": float(np.mean(np.abs(ratios - 1.0) <= F0_TOLERANCE)),  # NaN counts as lost
        "f0_ratio_median": float(np.nanmedian(ratios)),
        "confusions": [
            f"{t}->{i}" for t, i in zip(truth, identified["transformed"], strict=True) if t != i
        ],
    }


def mel_distance_of(tokenizer, clips: list[Clip]) -> float:
    """The acceptance number: mean whole-clip mel distance of encode -> decode."""
    return evaluate_tokenizer(
        tokenizer, clips, scorer=ReconstructionScorer(with_stoi=False, with_pesq=False)
    )["mel_distance"]


def fresh_like(tokenizer, seed: int) -> torch.nn.Module:
    """A freshly initialized model of the same config, seeded: the 'at initialization' baseline."""
    torch.manual_seed(seed)
    return type(tokenizer)(tokenizer.cfg).eval()


def summarize(result: dict) -> dict:
    """Round floats for printing and JSON."""

    def round_(v):
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, list | tuple):
            return [round_(x) for x in v]
        if isinstance(v, dict):
            return {k: round_(x) for k, x in v.items()}
        return v

    return {k: round_(v) for k, v in result.items()}


def judge_cer(
    transform: Callable[[np.ndarray], np.ndarray] | None, clips: list[Clip], judge
) -> float:
    """Corpus CER of the judge (`telugu_s2s.asr.Judge`) on `transform(clip)` against each
    clip's text; `transform=None` scores the clean clips."""
    from telugu_s2s.evaluation.cer import ErrorRate

    audio = [c.audio if transform is None else transform(c.audio) for c in clips]
    rate = ErrorRate()
    for hypothesis, clip in zip(judge.transcribe(audio), clips, strict=True):
        rate.add(hypothesis, clip.text)
    return rate.value
