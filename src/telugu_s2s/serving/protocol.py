"""The WebSocket wire protocol (specified in docs/protocol.md): audio codec and messages.

Audio both ways is PCM16 little-endian mono at 16 kHz. Text messages are JSON objects with a
`type`. Client -> server: `auth` (the token, as the first message, when the server wants
one; later ones are ignored), `interrupt`, `config`, `bye`. Server -> client: `ready`,
`interrupted`, `text`, `turn`, `stats`, `error`. Anything malformed raises `ProtocolError`,
which the session turns into an `error` event while the connection stays open.

`interrupted` carries `reason` (vad | manual) and `at_ms` (session time of the cut, ms since
`ready`), plus `heard_ms` (assistant audio of the reply sent before the cut) and `delay_ms`
(speech onset, or the interrupt message, to the cut).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

import numpy as np

MODES: tuple[str, ...] = ("stream", "turn")
STYLE_PREFERENCES: tuple[str, ...] = ("auto", "formal", "casual")
CLIENT_TYPES: tuple[str, ...] = ("auth", "interrupt", "config", "bye")
CONFIG_KEYS: tuple[str, ...] = ("speaker", "mode", "vad_threshold", "style")
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProtocolError(ValueError):
    """Bad client input; `code` is the `error` event's machine-readable code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- audio


def decode_pcm16(data: bytes) -> np.ndarray:
    """PCM16LE bytes -> float32 samples (N,) in [-1, 1)."""
    if len(data) % 2:
        raise ProtocolError(
            "bad_audio", f"binary message of {len(data)} bytes: PCM16 needs an even length"
        )
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0  # (N,)


def encode_pcm16(audio: np.ndarray) -> bytes:
    """float32 samples (N,) -> PCM16LE bytes, clipped to full scale."""
    scaled = np.clip(np.asarray(audio, dtype=np.float32) * 32768.0, -32768, 32767)
    return np.round(scaled).astype("<i2").tobytes()


# ---------------------------------------------------------------- client messages


def parse_client_message(text: str) -> dict:
    """A client text message -> a dict with a known `type`, or ProtocolError."""
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"text messages must be JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_message", "a text message must be a JSON object with a 'type'")
    kind = message.get("type")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(
            "unknown_type", f"unknown message type {kind!r}; expected one of {list(CLIENT_TYPES)}"
        )
    return message


def validate_config(message: dict, speakers: Sequence[str]) -> dict:
    """The changes a `config` message asks for, all checked: nothing applies unless all do."""
    changes = {k: v for k, v in message.items() if k != "type"}
    unknown = sorted(set(changes) - set(CONFIG_KEYS))
    if unknown:
        raise ProtocolError(
            "bad_config", f"unknown config keys {unknown}; known: {list(CONFIG_KEYS)}"
        )
    if "speaker" in changes:
        check_speaker(changes["speaker"], speakers)
    if "mode" in changes:
        check_mode(changes["mode"])
    if "style" in changes and changes["style"] not in STYLE_PREFERENCES:
        raise ProtocolError(
            "bad_style",
            f"unknown style {changes['style']!r}; expected one of {list(STYLE_PREFERENCES)}",
        )
    if "vad_threshold" in changes:
        changes["vad_threshold"] = check_threshold(changes["vad_threshold"])
    return changes


def check_speaker(speaker: object, speakers: Sequence[str]) -> str:
    if speaker not in speakers:
        raise ProtocolError(
            "unknown_speaker", f"unknown speaker {speaker!r}; expected one of {list(speakers)}"
        )
    return speaker  # type: ignore[return-value]


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ProtocolError("bad_mode", f"unknown mode {mode!r}; expected one of {list(MODES)}")
    return mode  # type: ignore[return-value]


def check_threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError("bad_config", f"vad_threshold must be a number, got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ProtocolError("bad_config", f"vad_threshold must lie in (0, 1), got {value}")
    return float(value)


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.match(session_id):
        raise ProtocolError("bad_session", "session ids are 1-64 letters, digits, '_' or '-'")
    return session_id


# ---------------------------------------------------------------- server events


def ready_event(
    session: str, sample_rate: int, frame_ms: int, speaker: str, mode: str, **extra
) -> dict:
    return {"type": "ready", "session": session, "sample_rate": sample_rate, "frame_ms": frame_ms,
            "speaker": speaker, "mode": mode, **extra}  # fmt: skip


def error_event(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


def interrupted_event(reason: str, at_ms: float, heard_ms: float, delay_ms: float) -> dict:
    return {"type": "interrupted", "reason": reason, "at_ms": round(at_ms, 1),
            "heard_ms": round(heard_ms, 1), "delay_ms": round(delay_ms, 1)}  # fmt: skip


def text_event(role: str, text: str, final: bool) -> dict:
    return {"type": "text", "role": role, "text": text, "final": final}


def turn_event(record: dict, dialog_topic: str | None = None) -> dict:
    """`record` is TurnRecord.to_json(): sentiment, topic, emotion and the turn's texts;
    `dialog_topic`: the session's topic as of this turn (`Aggregates.top_topic`)."""
    return {"type": "turn", **record, "dialog_topic": dialog_topic}


def dumps(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
