"""Voice specifications for the synthetic corpus, and a standard F0 measurement."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from telugu_s2s.data.espeak import Espeak, Rendering
from telugu_s2s.paths import CONFIG_DIR

SYNTH_CONFIG = CONFIG_DIR / "synth.yaml"
ASSISTANT_VOICES: tuple[str, ...] = ("arjun", "ravi", "priya", "lakshmi")
RENDER_VERSION = 1  # bump to invalidate every cached render


@dataclass(frozen=True)
class VoiceSpec:
    name: str
    espeak: str  # espeak-ng voice + variant, e.g. "te+f4"
    pitch: int  # espeak pitch 0-99
    range: int  # espeak pitch range 0-99 (intonation width)
    rate: int  # words per minute
    role: str = "assistant"  # "assistant" or "user"
    target_f0: float | None = None
    # Formant (vocal-tract length) scale: the rendering is replayed this much faster, which
    # moves formants and F0 up by this factor and shortens it by the same factor.
    formant: float = 1.0

    def jittered(self, rate_delta: int, pitch_delta: int, formant: float = 1.0) -> VoiceSpec:
        return replace(
            self, pitch=min(99, max(0, self.pitch + pitch_delta)),
            rate=max(80, self.rate + rate_delta), formant=round(self.formant * formant, 3),
        )  # fmt: skip


def voices_from_config(cfg) -> dict[str, VoiceSpec]:
    """All voices in a synth config (a DictConfig or a plain dict), assistants first."""
    voices = {}
    for role, key in (("assistant", "assistant_voices"), ("user", "user_voices")):
        for name, v in cfg[key].items():
            voices[name] = VoiceSpec(
                name=name, espeak=v["espeak"], pitch=int(v["pitch"]), range=int(v["range"]),
                rate=int(v["rate"]), role=role, target_f0=v.get("target_f0"),
                formant=float(v.get("formant", 1.0)),
            )  # fmt: skip
    return voices


def load_synth_config(path: str | Path = SYNTH_CONFIG) -> dict:
    """The synth config as a plain dict, without Hydra (for tests and tools)."""
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def render(text: str, voice: VoiceSpec, sample_rate: int = 16000) -> tuple[np.ndarray, Rendering]:
    """Render `text` in `voice`; returns float32 audio at `sample_rate` and the raw rendering."""
    raw = Espeak.instance().render(
        text, voice.espeak, rate=voice.rate, pitch=voice.pitch, pitch_range=voice.range
    )
    audio = raw.audio.astype(np.float32) / 32768.0  # (T,)
    source_rate = raw.sample_rate * voice.formant
    if source_rate != sample_rate:
        import soxr  # here: token-only training imports this module for the voice names

        audio = soxr.resample(audio, source_rate, sample_rate, quality="HQ")
    if voice.formant != 1.0:
        starts = tuple(int(round(ms / voice.formant)) for ms in raw.word_starts_ms)
        raw = replace(raw, word_starts_ms=starts)
    return audio.astype(np.float32), raw


def render_key(text: str, voice: VoiceSpec, sample_rate: int) -> str:
    payload = json.dumps([RENDER_VERSION, text, asdict(voice) | {"name": ""}, sample_rate])
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def median_f0(
    audio: np.ndarray, sample_rate: int, floor: float = 60.0, ceiling: float = 400.0
) -> float:
    """Median F0 of the voiced frames, by Praat's autocorrelation tracker (parselmouth)."""
    import parselmouth

    sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=sample_rate)
    pitch = sound.to_pitch(time_step=0.01, pitch_floor=floor, pitch_ceiling=ceiling)
    f0 = pitch.selected_array["frequency"]
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else float("nan")
