"""A small ctypes binding to libespeak-ng as bundled by `espeakng-loader`.

It renders UTF-8 text to int16 PCM and reports word timings, which the datamodules
use to align the assistant's text with its audio. The library is global state, so
there is one synthesizer per process (`Espeak.instance()`); parallel renders use
processes, not threads.
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass

import numpy as np

# espeak_AUDIO_OUTPUT / espeak_PARAMETER / event ids, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Rendering:
    audio: np.ndarray  # (T,) int16 at sample_rate
    sample_rate: int
    word_starts_ms: tuple[int, ...]  # start of each spoken word
    word_chars: tuple[tuple[int, int], ...]  # (start, length) of each word in the text, 0-based


class EspeakError(RuntimeError):
    pass


class Espeak:
    """One libespeak-ng instance; use `Espeak.instance()` (per process)."""

    _instance: Espeak | None = None
    _pid: int | None = None
    _lock = threading.Lock()
    _data_path: str | None = None  # None: the data folder bundled with espeakng-loader

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = (self._data_path or espeakng_loader.get_data_path()).encode()
        self._lib.espeak_Initialize.restype = ctypes.c_int
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, ctypes.c_char_p(data), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}); data path {data!r}")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: C holds a pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
        ]  # fmt: skip

    @classmethod
    def instance(cls) -> Espeak:
        with cls._lock:
            if cls._instance is None or cls._pid != os.getpid():
                cls._instance, cls._pid = cls(), os.getpid()
            return cls._instance

    @classmethod
    def use_data_path(cls, path: str | None) -> None:
        """Read voices and dictionaries from `path` (None: the bundled folder) from now on,
        in this process (e.g. the random variants of `data/voice_variety.py`)."""
        with cls._lock:
            if path == cls._data_path:
                return
            if cls._instance is not None and cls._pid == os.getpid():
                cls._instance._lib.espeak_Terminate()
            cls._instance, cls._data_path = None, path

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_WORD:
                self._events.append((ev.audio_position, ev.text_position - 1, ev.length))
            i += 1
        return 0

    def render(
        self, text: str, voice: str, *, rate: int, pitch: int, pitch_range: int,
        volume: int = 100, wordgap: int = 0,
    ) -> Rendering:  # fmt: skip
        """Render `text` with espeak voice `voice` (e.g. "te+f4") at the given parameters."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"unknown espeak voice {voice!r}")
            for name, value in (
                ("rate", rate), ("pitch", pitch), ("range", pitch_range),
                ("volume", volume), ("wordgap", wordgap),
            ):  # fmt: skip
                self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            err = self._lib.espeak_Synth(
                data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            self._lib.espeak_Synchronize()
            if err != 0:
                raise EspeakError(f"espeak_Synth failed with code {err} for {text!r}")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            starts = tuple(e[0] for e in self._events)
            chars = tuple((e[1], e[2]) for e in self._events)
            return Rendering(audio.astype(np.int16), self.sample_rate, starts, chars)

    def phonemes(self, text: str, voice: str = "te") -> str:
        """espeak-ng's phonemes for `text` (ASCII mnemonics, one clause after another): two
        spellings with the same phonemes sound the same (ప్రసన్న and ప్రసంన)."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise EspeakError(f"unknown espeak voice {voice!r}")
            remaining = ctypes.c_char_p(text.encode("utf-8"))
            clauses = []
            while remaining.value:  # the library moves the pointer past each clause it read
                clause = self._lib.espeak_TextToPhonemes(ctypes.byref(remaining), _CHARS_UTF8, 0)
                if clause:
                    clauses.append(clause.decode("ascii", "replace"))
            return " ".join(clauses)
