"""Fixtures for the serving tests: real Telugu speech in held-out user voices (espeak-ng),
so that silero-vad fires on it exactly as it would on a user."""

from __future__ import annotations

import numpy as np
import pytest

from telugu_s2s.data.voices import load_synth_config, render, voices_from_config


@pytest.fixture(scope="session")
def speech() -> dict[str, np.ndarray]:
    voices = voices_from_config(load_synth_config())
    texts = {
        "question": ("నాకు కామెడీ సినిమాలు ఇష్టం", "heldout_kaukovalta"),  # 2.2 s
        "barge": ("ఆగండి, ఒక్క నిమిషం వినండి", "heldout_anika"),  # 2.2 s
        "cough": ("అ", "heldout_anika"),  # about 0.2 s: a filler, not an interruption
    }
    return {name: render(text, voices[voice])[0] for name, (text, voice) in texts.items()}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * 16000), np.float32)


@pytest.fixture(scope="session")
def postgres():
    """One throw-away PostgreSQL cluster for the whole run (skipped, with the reason, only
    when the server cannot be installed here)."""
    from tests.serving.postgres import start_cluster, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The same store test on the embedded default and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/store.db"
    return request.getfixturevalue("postgres").database()
