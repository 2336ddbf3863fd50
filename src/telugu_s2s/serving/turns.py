"""Closing turns: the user audio of the open turn, the judge that may transcribe it, and the
ordered sending of each closed turn's final texts and `turn` event.

Where the final user transcript comes from is `ServerSettings.user_transcript`:
- `s2s`: the S2S model's own user stream, the pieces it emitted while the turn was open;
- `judge`: the recognizer stage (`telugu_s2s.asr.Judge`, `checkpoints/asr`) over the turn's
  buffered user audio. It runs on its own small executor, never on the engine's thread, so
  the 80 ms tick never waits for it: a closed turn's events go out when its transcript is
  ready, while the session goes on stepping (and playing the next reply).

Either way each turn sends, in this order: `text` (user, final), `text` (assistant, final),
`turn`; and turns go out in the order they closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from telugu_s2s.serving import protocol
from telugu_s2s.serving.context import Aggregates
from telugu_s2s.serving.engine_api import TurnRecord
from telugu_s2s.serving.vad import SpeechEvent
from telugu_s2s.text_topics import SessionTopic

log = logging.getLogger(__name__)
USER_TRANSCRIPTS: tuple[str, ...] = ("s2s", "judge")
DIALOG_TOPICS: tuple[str, ...] = ("s2s", "text")


class SpeechRecorder:
    """The user's speech since the last turn closed: each utterance from `preroll_frames`
    before its onset (the onset is only known `min_speech_ms` late) to its end, at most
    `max_frames` frames in all (the oldest go first)."""

    def __init__(self, preroll_frames: int, max_frames: int):
        self._preroll: deque[np.ndarray] = deque(maxlen=max(1, preroll_frames))
        self._done: list[list[np.ndarray]] = []  # finished utterances, oldest first
        self._current: list[np.ndarray] | None = None  # the utterance going on, if any
        self.max_frames = max_frames

    def hear(self, live: list[np.ndarray], event: SpeechEvent | None) -> None:
        self._preroll.extend(live)
        if event is not None and event.kind == "start":
            self._current = list(self._preroll)
        elif self._current is not None:
            self._current.extend(live)
            del self._current[: -self.max_frames]
        if event is not None and event.kind == "end" and self._current is not None:
            self._done.append(self._current)
            self._current = None
            while sum(map(len, self._done)) > self.max_frames:
                self._done.pop(0)

    def drop_last(self) -> None:
        """The last utterance was a burst over the reply (a cough, a filler), not a turn."""
        if self._current is not None:
            self._current = None
        elif self._done:
            self._done.pop()

    def peek(self) -> np.ndarray:
        """The finished utterances of the open turn as one clip (N,), kept for `take`."""
        return _joined(self._done)

    def take(self, include_current: bool = False) -> np.ndarray:
        """The finished utterances (and the one going on, when asked) as one clip (N,); an
        utterance still going on otherwise stays for the next turn."""
        utterances, self._done = self._done, []
        if include_current and self._current is not None:
            utterances.append(self._current)
            self._current = None
        return _joined(utterances)


def _joined(utterances: list[list[np.ndarray]]) -> np.ndarray:
    """Utterances of frames as one clip (N,)."""
    frames = [frame for utterance in utterances for frame in utterance]
    return np.concatenate(frames) if frames else np.zeros(0, np.float32)


class Recognizer(Protocol):
    def transcribe(self, clips: list[np.ndarray], sample_rate: int | None = None) -> list[str]: ...


def load_judge(asr_dir: str | Path | None) -> Recognizer:
    """The recognizer export for `user_transcript: judge`, or a clear error."""
    from telugu_s2s.asr import DEFAULT_ASR_DIR, Judge
    from telugu_s2s.checkpoint import CONFIG_FILE

    directory = Path(asr_dir) if asr_dir else DEFAULT_ASR_DIR
    if not (directory / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"server.user_transcript=judge needs the recognizer export in {directory} "
            f"({CONFIG_FILE} is missing): create it with `make train-asr`, point "
            "server.asr_dir at one, or set server.user_transcript=s2s (and server.replies=model)"
        )
    return Judge.load(directory)


class Transcriber:
    """Runs the judge on a small executor of its own (not the engine's worker thread)."""

    def __init__(self, judge: Recognizer, sample_rate: int, workers: int = 1):
        self.judge = judge
        self.sample_rate = sample_rate
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="judge")

    def _run(self, audio: np.ndarray) -> str:
        import torch

        with torch.inference_mode():
            return self.judge.transcribe([audio], sample_rate=self.sample_rate)[0]

    async def transcribe(self, audio: np.ndarray) -> str:
        if audio.size == 0:
            return ""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, audio)

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # queued transcripts still finish: their turns are saved


class TopicModel(Protocol):
    def log_posterior(self, text: str) -> dict[str, float]: ...


def load_topic_model(directory: str | Path | None) -> TopicModel:
    """The text topic model for `dialog_topic: text` (`telugu_s2s.text_topics`), or a clear
    error."""
    from telugu_s2s.text_topics import DEFAULT_DIR, MODEL_FILE, NaiveBayesTopics

    directory = Path(directory) if directory else DEFAULT_DIR
    if not (directory / MODEL_FILE).is_file():
        raise FileNotFoundError(
            f"server.dialog_topic=text needs {MODEL_FILE} in {directory}: create it with "
            "`make train-topics`, point server.text_topics_dir at one, or set "
            "server.dialog_topic=s2s"
        )
    return NaiveBayesTopics.load(directory)


class TurnSender:
    """Finishes closed turns in order: final user transcript, store, events."""

    def __init__(self, session_id: str, send_json: Callable[[dict], Awaitable[None]],
                 save_turn: Callable[[TurnRecord, Aggregates], None],
                 transcriber: Transcriber | None,
                 on_error: Callable[[str], None], topic: SessionTopic | None = None):  # fmt: skip
        self.session_id = session_id
        self.topic = topic or SessionTopic(None)
        self._send_json = send_json
        self._save_turn = save_turn  # blocking: runs in a thread
        self._transcriber = transcriber
        self._on_error = on_error
        self._last: asyncio.Task | None = None
        self.partial_user_text = transcriber is None  # the S2S pieces are this mode's partials

    async def close_turn(self, record: TurnRecord, audio: np.ndarray, aggregates: Aggregates,
                         revise: Callable[[str], Awaitable[None]] | None = None) -> None:  # fmt: skip
        """Save and send `record` now (s2s), or once the judge has transcribed the turn's
        user `audio` (judge); in both cases after every turn closed before it.
        `aggregates`: the session's figures as of this turn (a copy). `revise` is handed the
        judge's transcript (the engine's memory may read it)."""
        if self._transcriber is None:
            await self._finish(record, aggregates, None, None)
            return
        pending = asyncio.ensure_future(self._transcriber.transcribe(audio))
        self._last = asyncio.create_task(
            self._finish(record, aggregates, pending, self._last, revise),
            name=f"turn-{self.session_id}-{record.index}",
        )  # fmt: skip

    async def _finish(self, record: TurnRecord, aggregates: Aggregates,
                      transcript: asyncio.Future | None, previous: asyncio.Task | None,
                      revise: Callable[[str], Awaitable[None]] | None = None) -> None:  # fmt: skip
        if transcript is not None:
            try:
                record.user_text = await transcript
            except Exception:  # noqa: BLE001 - keep the S2S text; the turn still goes out
                log.exception("session %s: the judge failed on turn %d", self.session_id,
                              record.index)  # fmt: skip
                self._on_error("judge_error")
            else:
                await self._revise(revise, record)
        if previous is not None:
            await asyncio.wait([previous])  # order of closing, whatever it raised
        try:
            # in closing order, with the final transcript
            self.topic.add(record.index, record.user_text, record.topics)
        except Exception:  # noqa: BLE001 - the turn is saved and sent all the same
            log.exception("session %s: turn %d's topic", self.session_id, record.index)
        aggregates.topic_evidence = self.topic.evidence
        await asyncio.to_thread(self._save_turn, record, aggregates)
        await self._send_json(protocol.text_event("user", record.user_text, True))
        await self._send_json(protocol.text_event("assistant", record.assistant_text, True))
        await self._send_json(protocol.turn_event(record.to_json(), aggregates.top_topic))

    async def _revise(self, revise: Callable[[str], Awaitable[None]] | None,
                      record: TurnRecord) -> None:  # fmt: skip
        if revise is None:
            return
        try:
            await revise(record.user_text)
        except Exception:  # noqa: BLE001 - the memory keeps what the ear heard
            log.exception("session %s: turn %d's transcript did not reach the engine's memory",
                          self.session_id, record.index)  # fmt: skip

    async def drain(self) -> None:
        """Wait until every closed turn is saved and sent."""
        if self._last is not None:
            await asyncio.wait([self._last])
