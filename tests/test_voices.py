"""The four assistant voices: pitch on target, and distinct pace and timbre."""

import numpy as np
import pytest
import torch

from telugu_s2s.data.corpus import all_turns, load_corpus
from telugu_s2s.data.voices import (
    ASSISTANT_VOICES,
    VoiceSpec,
    load_synth_config,
    median_f0,
    render,
    voices_from_config,
)
from telugu_s2s.modules.features import MelSpectrogram

TARGETS_HZ = {"arjun": 120, "ravi": 100, "priya": 220, "lakshmi": 190}


@pytest.fixture(scope="module")
def voices():
    return voices_from_config(load_synth_config())


@pytest.fixture(scope="module")
def texts():
    turns = all_turns(load_corpus())
    return [t.assistant for t in turns[:: len(turns) // 24][:24]]


@pytest.fixture(scope="module")
def renders(voices, texts):
    return {name: [render(text, voices[name])[0] for text in texts] for name in ASSISTANT_VOICES}


def test_targets_match_the_config(voices):
    for name, target in TARGETS_HZ.items():
        assert voices[name].target_f0 == target and voices[name].role == "assistant"


@pytest.mark.parametrize("name", ASSISTANT_VOICES)
def test_median_f0_within_10_percent(renders, name):
    f0s = [median_f0(audio, 16000) for audio in renders[name]]
    assert len(f0s) >= 20 and not np.isnan(f0s).any()
    measured = float(np.median(f0s))
    assert abs(measured - TARGETS_HZ[name]) <= 0.10 * TARGETS_HZ[name], f"{name}: {measured:.1f} Hz"


def test_voices_differ_in_pace(renders):
    durations = {name: sum(a.shape[0] for a in audios) for name, audios in renders.items()}
    names = list(durations)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ratio = durations[a] / durations[b]
            assert abs(ratio - 1.0) >= 0.05, f"{a} and {b} speak at the same pace"


def test_voices_differ_in_timbre_not_only_pitch(voices, texts):
    """At the SAME pitch and rate, the voices' spectral envelopes still differ far more
    than one voice's envelope differs between two sets of sentences."""
    mel = MelSpectrogram(n_mels=40)

    def envelope(voice: VoiceSpec, sentences: list[str]) -> np.ndarray:
        frames = []
        for text in sentences:
            spec = mel(torch.from_numpy(render(text, voice)[0])[None])[0]  # (M, F)
            energy = spec.mean(0)
            frames.append(spec[:, energy > energy.max() - 4].mean(1).numpy())  # active frames
        return np.mean(frames, axis=0)

    first, second = texts[:12], texts[12:24]
    neutral = {
        n: VoiceSpec(n, voices[n].espeak, pitch=50, range=50, rate=150) for n in ASSISTANT_VOICES
    }
    within = max(np.linalg.norm(envelope(v, first) - envelope(v, second)) for v in neutral.values())
    env = {n: envelope(v, first) for n, v in neutral.items()}
    across = min(
        np.linalg.norm(env[a] - env[b])
        for i, a in enumerate(ASSISTANT_VOICES)
        for b in ASSISTANT_VOICES[i + 1 :]
    )
    assert across > 3 * within, (across, within)
