"""Fixtures for the browser end-to-end test: Debian's Chromium, a fake microphone, a server.

The server is the real app (`create_app`, uvicorn on a free port, silero-vad on) around an
engine chosen by the `engine_kind` parameter: `fake` (tests/serving/fakes.py, a tone reply)
by default, `model` (the engine and server settings of conf/serve.yaml, trained checkpoints:
the judge's transcripts, the reply planner) with `S2S_E2E_ENGINE=model`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from telugu_s2s.paths import REPO_ROOT

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
# A user utterance absent from the corpus, in a held-out user voice.
UTTERANCE = ("ఈ రోజు వాతావరణం ఎలా ఉంటుంది చెప్పండి", "heldout_kaukovalta")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed by install_browser.sh when missing; else the test skips."""
    pytest.importorskip("playwright.sync_api", reason="needs Playwright for Python (the dev extra)")
    if not Path(CHROMIUM).exists():
        try:
            out = subprocess.run(["bash", str(HERE / "install_browser.sh")], capture_output=True,
                                 text=True, timeout=900)  # fmt: skip
            reason = (out.stderr or out.stdout).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        if not Path(CHROMIUM).exists():
            pytest.skip(f"Chromium is not installed and could not be installed ({reason})")
    return CHROMIUM


@pytest.fixture(scope="session")
def fake_mic_wav(tmp_path_factory) -> Path:
    """What the fake microphone says (Chromium loops the file, about every 11 s): a pause, one
    question, then a silence in which the assistant's reply plays undisturbed."""
    from telugu_s2s.data.voices import load_synth_config, render, voices_from_config

    text, voice = UTTERANCE
    speech, _ = render(text, voices_from_config(load_synth_config())[voice])  # (N,) at 16 kHz
    audio = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(16000 * 8, np.float32)])
    path = tmp_path_factory.mktemp("mic") / "heldout_question.wav"
    sf.write(path, audio, 16000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def _engine(kind: str):
    if kind == "fake":
        from tests.serving.fakes import FakeEngine

        # espeak pauses between words last up to ~300 ms: wait 480 ms before replying; a
        # 4.8 s reply leaves time to watch it play and interrupt it.
        return FakeEngine(reply_frames=60, reply_after_frames=6, amplitude=0.3)
    if kind == "model":
        import hydra
        from hydra import compose, initialize_config_dir

        import telugu_s2s.serve  # noqa: F401 - registers the ${repo_root:} resolver
        from telugu_s2s.paths import CONFIG_DIR

        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("serve")
        return hydra.utils.instantiate(cfg.engine)
    raise ValueError(f"unknown engine kind {kind!r}; expected fake or model")


@pytest.fixture(scope="session", params=[os.environ.get("S2S_E2E_ENGINE", "fake")])
def engine_kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(engine_kind, tmp_path_factory) -> Iterator[str]:
    """The real app on a free port; yields its base URL (http://127.0.0.1:PORT)."""
    from telugu_s2s.serving.server import ServerSettings
    from tests.serving.fakes import running_server

    state = tmp_path_factory.mktemp("state")
    served = {}
    if engine_kind == "model":  # as `make demo` serves it: the judge, the topic, the planner
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        import telugu_s2s.serve  # noqa: F401 - registers the ${repo_root:} resolver
        from telugu_s2s.paths import CONFIG_DIR

        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            served = OmegaConf.to_container(compose("serve").server, resolve=True)
    settings = ServerSettings.from_dict(
        {**served, "store_url": f"sqlite:///{state}/e2e.db", "stats_interval_s": 1.0}
    )
    with running_server(_engine(engine_kind), settings, vad="silero") as (ws_url, _app):
        yield ws_url.replace("ws://", "http://", 1)


@pytest.fixture()
def browser_context(chromium, fake_mic_wav, tmp_path):
    """A fresh headless Chromium profile whose microphone plays `fake_mic_wav`."""
    from playwright.sync_api import sync_playwright

    args = [
        "--use-fake-ui-for-media-stream",  # grant the mic without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic_wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # No internet here: nothing may phone home.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
    ]
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, args=args,
            viewport={"width": 1280, "height": 800}, permissions=["microphone"],
        )  # fmt: skip
        try:
            yield context
        finally:
            with contextlib.suppress(Exception):
                context.close()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
