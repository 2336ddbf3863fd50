"""Telugu character vocabulary and frame alignment of text to audio.

The S2S model's text streams (the assistant's inner monologue and the user transcript)
are sequences of Unicode code points from the Telugu block, one token per frame slot.
"""

from __future__ import annotations

import re

import numpy as np

PAD, BLANK, EOS, SPACE = 0, 1, 2, 3
_SPECIALS = ("<pad>", "<blank>", "<eos>", " ")
_PUNCT = ".,?!'-"
_JOINERS = ("\u200c", "\u200d")
_TELUGU = tuple(chr(c) for c in range(0x0C00, 0x0C80))
VOCAB: tuple[str, ...] = _SPECIALS + tuple(_PUNCT) + _JOINERS + _TELUGU
_INDEX = {tok: i for i, tok in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)


class TextTokenizer:
    """Characters <-> ids. Unknown characters are dropped (with `strict`, they raise)."""

    pad_id, blank_id, eos_id, space_id = PAD, BLANK, EOS, SPACE
    vocab_size = VOCAB_SIZE

    def encode(self, text: str, strict: bool = False) -> list[int]:
        ids = []
        for ch in text:
            if ch in _INDEX:
                ids.append(_INDEX[ch])
            elif strict:
                raise ValueError(
                    f"character {ch!r} (U+{ord(ch):04X}) is not in the Telugu vocabulary"
                )
        return ids

    def decode(self, ids, skip_special: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if skip_special and i in (PAD, BLANK, EOS):
                continue
            out.append(VOCAB[i] if 0 <= i < VOCAB_SIZE else "")
        return "".join(out)

    def collapse_frames(self, frame_ids) -> str:
        """Text of a frame-aligned stream: drop blanks/padding, keep order."""
        return self.decode(frame_ids, skip_special=True)


def ctc_collapse(ids, previous: int = BLANK) -> list[int]:
    """Greedy CTC ids -> characters: repeats merge (across a chunk boundary too, through the
    chunk's `previous` id) and blanks drop."""
    out = []
    for i in ids:
        i = int(i)
        if i != previous and i != BLANK:
            out.append(i)
        previous = i
    return out


def ctc_transcript(ids) -> str:
    """Greedy CTC ids of one utterance -> its text, whitespace collapsed."""
    return " ".join(TextTokenizer().decode(ctc_collapse(ids)).split())


def align_to_frames(
    text: str,
    word_starts_ms: list[int],
    word_char_start: list[int],
    num_frames: int,
    frame_rate: float,
    offset_frames: int = 0,
    tokenizer: TextTokenizer | None = None,
) -> np.ndarray:
    """Lay `text` on a frame grid: each word's characters start at the frame where the word
    is spoken (from the synthesizer's word timings) and take one frame each; a word that
    would overlap the previous one is pushed later. Frames without text are BLANK.

    Returns (num_frames,) int64. Text that would run past `num_frames` is cut.
    """
    tok = tokenizer or TextTokenizer()
    frames = np.full(num_frames, BLANK, dtype=np.int64)  # (F,)
    if word_starts_ms:
        starts_ms = list(word_starts_ms)
        char_starts = list(word_char_start)
    else:  # no timings (e.g. real corpora): one word per frame from the start
        char_starts = [m.start() for m in re.finditer(r"\S+", text)]
        starts_ms = [i * 1000.0 / frame_rate for i in range(len(char_starts))]
    # Each word takes the text up to the next word, so punctuation is kept.
    bounds = char_starts[1:] + [len(text)]
    cursor = 0
    for start_ms, lo, hi in zip(starts_ms, char_starts, bounds, strict=True):
        ids = tok.encode(text[lo:hi].strip()) + [SPACE]
        cursor = max(cursor, offset_frames + int(start_ms * frame_rate / 1000.0))
        for token in ids:
            if cursor >= num_frames:
                return frames
            frames[cursor] = token
            cursor += 1
    return frames
