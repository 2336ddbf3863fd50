"""Real Telugu speech corpora mapped into the dataset schema (`telugu_s2s.data.synth.features`).

    python -m telugu_s2s.recipes CORPUS --root DOWNLOADED_DIR --out data/build/CORPUS

Each corpus reader (`telugu_s2s.recipes.corpora`) yields `Utterance`s from the corpus's own
layout, read with Hugging Face `datasets` where the corpus ships tables; `write_dataset`
resamples them to 16 kHz mono FLAC and saves a train/validation/test `DatasetDict` that
`python train.py stage=codec|speaker paths.dataset_dir=...` trains on. Columns that only the
synthetic dialogs have (topic, emotion, word timings, ...) are left empty. Nothing is
downloaded here: see recipes/<corpus>/README.md for where each corpus comes from.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Utterance:
    id: str
    text: str
    speaker: str
    audio: bytes | str  # encoded audio bytes, or a path to an audio file
    split: str | None = None  # the corpus's own split; None: assigned by speaker


def speaker_split(key: str, held_out: float = 0.1) -> str:
    """A stable split by hashing `key`: `held_out` of the keys each for validation and test.
    Keyed by speaker, splits are speaker-disjoint; by utterance, for one-speaker corpora."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if bucket < held_out else "test" if bucket < 2 * held_out else "train"


def decode(audio: bytes | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 (T,) at `sample_rate` from a file path or encoded bytes (wav, flac, mp3,
    ogg: whatever libsndfile reads; PyAV for the rest, e.g. m4a)."""
    import soundfile as sf
    import soxr

    source = io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)
    try:
        wav, rate = sf.read(source, dtype="float32", always_2d=True)
    except sf.LibsndfileError:
        wav, rate = _decode_with_av(audio)
    wav = wav.mean(axis=1)
    if rate != sample_rate:
        wav = soxr.resample(wav, rate, sample_rate)
    return np.ascontiguousarray(wav, dtype=np.float32)


def _decode_with_av(audio: bytes | str) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(audio) if isinstance(audio, bytes) else str(audio)) as container:
        stream = container.streams.audio[0]
        frames = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
        rate = stream.rate
    samples = np.concatenate([f.reshape(-1, f.shape[-1]) for f in frames], axis=-1)  # (C, T)
    return samples.T, rate


def _flac(wav: np.ndarray) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _empty_value(feature):
    """What a column that this corpus lacks holds: no label, no sequence, empty text."""
    import datasets as hfd

    if isinstance(feature, hfd.ClassLabel):
        return -1
    if isinstance(feature, list) or type(feature).__name__ in ("Sequence", "List", "LargeList"):
        return []
    if isinstance(feature, hfd.Value):
        if feature.dtype == "string":
            return ""
        return float("nan") if feature.dtype.startswith("float") else 0
    return None


def _rows(utterances: Iterable[Utterance], corpus: str, min_seconds: float) -> Iterator[dict]:
    for utt in utterances:
        if not utt.text.strip():
            continue  # untranscribed
        try:
            wav = decode(utt.audio)
        except Exception as exc:  # libsndfile and PyAV raise many kinds: skip, and say so
            log.warning("%s/%s: unreadable audio, skipped (%s)", corpus, utt.id, exc)
            continue
        if wav.shape[0] < min_seconds * SAMPLE_RATE:
            continue  # too short to crop
        yield {
            "id": f"{corpus}/{utt.id}",
            "audio": {"bytes": _flac(wav), "path": f"{corpus}/{utt.id}.flac"},
            "sampling_rate": SAMPLE_RATE,
            "duration": wav.shape[0] / SAMPLE_RATE,
            "text": utt.text.strip(),
            "speaker": f"{corpus}_{utt.speaker}",
            "role": "user",  # real speech trains the listener side (and the codec)
            "dialog_id": f"{corpus}/{utt.id}",
            "split": utt.split or speaker_split(utt.speaker),
        }


def write_dataset(
    utterances: Iterable[Utterance],
    out: str | Path,
    corpus: str,
    max_utterances: int | None = None,
    min_seconds: float = 0.5,
):
    """Decode, resample and save the utterances as a train/validation/test DatasetDict."""
    import itertools

    import datasets as hfd

    from telugu_s2s.data.synth import features

    schema = features()
    by_split: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for row in itertools.islice(_rows(utterances, corpus, min_seconds), max_utterances):
        split = row.pop("split")
        if split not in by_split:
            raise ValueError(f"utterance {row['id']}: unknown split {split!r}")
        full = {name: _empty_value(f) for name, f in schema.items()}
        full.update(row)
        by_split[split].append(full)
    if not by_split["train"]:
        raise ValueError(f"no usable utterances of {corpus} for the train split")
    dataset = hfd.DatasetDict({
        split: hfd.Dataset.from_dict({k: [r[k] for r in rows] for k in schema}, features=schema)
        for split, rows in by_split.items()
    })  # fmt: skip
    # one shard each: a split with no rows would otherwise be saved unreadable
    dataset.save_to_disk(str(out), num_shards=dict.fromkeys(SPLITS, 1))
    return dataset
