"""Voice activity for barge-in: silero-vad run batched over sessions, and a speech tracker.

silero-vad scores 512-sample windows (32 ms at 16 kHz) with an LSTM and 64 samples of left
context. The packaged TorchScript model keeps that state inside the module, which cannot be
shared between sessions, so `SileroVAD` calls its inner network functionally and keeps one
`VADState` per session. An 80 ms frame holds 2.5 windows; the remainder waits for the next
frame, and a frame's probability is the highest of its windows.

`SpeechTracker` turns per-frame probabilities into speech onsets and ends with a threshold,
a minimum speech duration (onset only after that much voiced audio) and a hangover (the end
only after that much silence).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads with the model, so a server without VAD starts without it
    import torch

WINDOW = 512  # samples per silero-vad window at 16 kHz
CONTEXT = 64  # left context the 16 kHz model expects
SAMPLE_RATE = 16000


@dataclass
class VADConfig:
    threshold: float = 0.5  # speech probability above which a frame counts as voiced
    min_speech_ms: float = 160.0  # voiced audio needed before an onset is declared
    hangover_ms: float = 320.0  # silence needed before speech is declared over


@dataclass
class VADState:
    """One stream's silero-vad state."""

    lstm: torch.Tensor | None = None  # (2, 1, H); None: zeros (a fresh stream)
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))  # (64,)
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (<512,)


def load_silero() -> torch.jit.ScriptModule:
    """The packaged silero-vad TorchScript model (no network)."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad  # its import sets torch threads to 1 process-wide: undo that

    torch.set_num_threads(threads)
    with warnings.catch_warnings():  # its loader uses deprecated importlib and jit APIs
        warnings.simplefilter("ignore", DeprecationWarning)
        return silero_vad.load_silero_vad()


class SileroVAD:
    """Batched streaming silero-vad: many independent streams, one model call per window."""

    def __init__(self, model: torch.jit.ScriptModule | None = None):
        self._net = (model or load_silero())._model  # forward(x (B, 64+512), state) -> (p, state)

    def warmup(self) -> None:
        """TorchScript optimises on the first calls: make them before the first client."""
        for batch in (1, 2, 1):
            self([np.zeros(1280, np.float32)] * batch, [VADState() for _ in range(batch)])

    def __call__(self, frames: list[np.ndarray], states: list[VADState]) -> list[float]:
        """Speech probability of each stream's new audio: the highest of its windows."""
        return [float(p.max()) if p.size else 0.0 for p in self.window_probs(frames, states)]

    def window_probs(self, frames: list[np.ndarray], states: list[VADState]) -> list[np.ndarray]:
        """Per stream, the probabilities (W,) of the windows its new audio (any length)
        completed; updates `states`. All streams' k-th windows run as one batch."""
        import torch

        windows: list[list[np.ndarray]] = []
        for frame, state in zip(frames, states, strict=True):
            audio = np.concatenate([state.pending, frame.astype(np.float32)])
            count = audio.shape[0] // WINDOW
            windows.append([audio[i * WINDOW : (i + 1) * WINDOW] for i in range(count)])
            state.pending = audio[count * WINDOW :].copy()
        probs: list[list[float]] = [[] for _ in frames]
        for k in range(max((len(w) for w in windows), default=0)):
            rows = [i for i, w in enumerate(windows) if len(w) > k]
            x = np.stack(
                [np.concatenate([states[i].context, windows[i][k]]) for i in rows]
            )  # (B, 576)
            with torch.inference_mode():
                lstm = torch.cat([_lstm(states[i]) for i in rows], dim=1)  # (2, B, H)
                out, lstm = self._net(torch.from_numpy(x), lstm)  # (B, 1), (2, B, H)
                for j, i in enumerate(rows):
                    states[i].lstm = lstm[:, j : j + 1].clone()  # (2, 1, H)
                    states[i].context = windows[i][k][-CONTEXT:].copy()
                    probs[i].append(float(out[j, 0]))
        return [np.asarray(p, np.float32) for p in probs]


def _lstm(state: VADState) -> torch.Tensor:
    import torch

    return torch.zeros(2, 1, 128) if state.lstm is None else state.lstm  # (2, 1, H)


@dataclass
class SpeechEvent:
    kind: str  # "start" | "end"
    onset_ms: float  # stream time of the first voiced frame of this speech
    duration_ms: float  # onset to the last voiced frame's end
    gap_ms: float = float("inf")  # "start": silence since the previous speech ended


class SpeechTracker:
    """Per-frame probabilities -> speech start/end events, in stream time (ms of audio)."""

    def __init__(self, config: VADConfig, frame_ms: float):
        self.config = config
        self.frame_ms = frame_ms
        self.now_ms = 0.0  # stream time at the end of the last frame
        self.in_speech = False
        self.onset_ms = 0.0
        self.last_voiced_ms = -1e9  # end of the last voiced frame
        self._run_start_ms: float | None = None  # first frame of the current voiced run
        self._run_ms = 0.0
        self._speech_end_ms = -float("inf")  # last voiced frame of the previous speech

    @property
    def speech_ms(self) -> float:
        """Length of the current speech (onset to the last voiced frame); 0 outside speech."""
        return self.last_voiced_ms - self.onset_ms if self.in_speech else 0.0

    @property
    def silence_ms(self) -> float:
        """Time since the last voiced frame ended."""
        return self.now_ms - self.last_voiced_ms

    def update(self, prob: float, duration_ms: float | None = None) -> SpeechEvent | None:
        """Feed the probability of the next `duration_ms` (default one frame) of audio."""
        duration_ms = self.frame_ms if duration_ms is None else duration_ms
        start_ms, self.now_ms = self.now_ms, self.now_ms + duration_ms
        if prob >= self.config.threshold:
            self.last_voiced_ms = self.now_ms
            if self._run_start_ms is None:
                self._run_start_ms, self._run_ms = start_ms, 0.0
            self._run_ms += duration_ms
            if not self.in_speech and self._run_ms >= self.config.min_speech_ms:
                self.in_speech, self.onset_ms = True, self._run_start_ms
                gap = self.onset_ms - self._speech_end_ms
                return SpeechEvent("start", self.onset_ms, self.speech_ms, gap)
            return None
        self._run_start_ms, self._run_ms = None, 0.0  # an onset needs contiguous voiced frames
        if self.in_speech and self.silence_ms >= self.config.hangover_ms:
            event = SpeechEvent("end", self.onset_ms, self.speech_ms)
            self.in_speech, self._speech_end_ms = False, self.last_voiced_ms
            return event
        return None
