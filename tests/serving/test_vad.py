"""Batched streaming silero-vad and the speech tracker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from telugu_s2s.serving.vad import SileroVAD, SpeechTracker, VADConfig, VADState, load_silero
from tests.serving.conftest import silence


@pytest.fixture(scope="module")
def model():
    return load_silero()


def test_chunked_equals_whole_sequence_and_the_stock_model(model, speech):
    audio = np.concatenate([silence(0.3), speech["question"][:24000]])
    vad = SileroVAD(model)
    whole = vad.window_probs([audio], [VADState()])[0]  # (W,)
    state, chunked = VADState(), []
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, audio.shape[0]), 40, replace=False))
    for chunk in np.split(audio, cuts):
        chunked.append(vad.window_probs([chunk], [state])[0])
    np.testing.assert_allclose(np.concatenate(chunked), whole, atol=1e-5)
    model.reset_states()  # the packaged stateful model, window by window
    with torch.no_grad():
        stock = [
            model(torch.from_numpy(audio[i : i + 512])[None], 16000).item()
            for i in range(0, whole.size * 512, 512)
        ]
    np.testing.assert_allclose(whole, stock, atol=1e-5)
    assert whole.max() > 0.9 and whole[:5].max() < 0.2  # speech found, leading silence not


def test_streams_in_one_batch_match_streams_alone(model, speech):
    vad = SileroVAD(model)
    a, b = speech["question"][:16000], np.concatenate([silence(0.5), speech["barge"]])[:16000]
    alone = [vad.window_probs([x], [VADState()])[0] for x in (a, b)]
    states = [VADState(), VADState()]
    together = [[], []]
    for start in range(0, 16000, 1280):  # 80 ms frames: 2 or 3 windows each, batched
        for i, p in enumerate(
            vad.window_probs([a[start : start + 1280], b[start : start + 1280]], states)
        ):
            together[i].append(p)
    for i in range(2):
        np.testing.assert_allclose(np.concatenate(together[i]), alone[i], atol=1e-5)


def test_tracker_needs_min_speech_and_hangover():
    tracker = SpeechTracker(
        VADConfig(threshold=0.5, min_speech_ms=160, hangover_ms=240), frame_ms=80
    )
    events = [
        tracker.update(p) for p in [0.1, 0.9, 0.2, 0.9, 0.9, 0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1]
    ]
    kinds = [(i, e.kind) for i, e in enumerate(events) if e is not None]
    # one voiced frame (index 1) is no onset; frames 3-4 are (onset at 240 ms); the one-frame
    # gap at 6 is bridged; the end comes 240 ms after the last voiced frame (index 7).
    assert kinds == [(4, "start"), (10, "end")]
    assert events[4].onset_ms == 240 and events[10].duration_ms == 640 - 240


def test_tracker_threshold_is_a_live_setting():
    tracker = SpeechTracker(VADConfig(threshold=0.5, min_speech_ms=80, hangover_ms=80), frame_ms=80)
    assert tracker.update(0.4) is None
    tracker.config.threshold = 0.3
    assert tracker.update(0.4).kind == "start"
