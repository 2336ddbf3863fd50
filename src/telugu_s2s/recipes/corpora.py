"""Readers for the Telugu sets of open speech corpora, each in the layout it is downloaded in
(recipes/<corpus>/README.md). Each yields `Utterance`s; `write_dataset` does the rest."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from telugu_s2s.recipes import Utterance

# Festival's prompt list: ( utterance_id "text" )
_FESTIVAL_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


def _require(paths: list[Path], what: str, root: Path) -> list[Path]:
    if not paths:
        raise FileNotFoundError(f"no {what} under {root}: is this the corpus's download folder?")
    return paths


def indictts(root: Path) -> Iterator[Utterance]:
    """IndicTTS Telugu (IIT Madras): `<gender>/txt.done.data` (Festival prompts) beside
    `<gender>/wav/<id>.wav`, one professional speaker per gender folder: split by utterance
    (holding a speaker out would hold out a whole voice)."""
    from telugu_s2s.recipes import speaker_split

    for prompts in _require(sorted(root.rglob("txt.done.data")), "txt.done.data", root):
        speaker = prompts.parent.name.lower()
        for line in prompts.read_text(encoding="utf-8").splitlines():
            if not (m := _FESTIVAL_LINE.match(line.strip())):
                continue
            wav = prompts.parent / "wav" / f"{m[1]}.wav"
            if wav.is_file():
                yield Utterance(m[1], m[2], speaker, str(wav), speaker_split(m[1]))


def openslr66(root: Path) -> Iterator[Utterance]:
    """OpenSLR 66, crowd-sourced Telugu (te_in_female, te_in_male): `line_index.tsv` (id, text)
    beside the wavs; the speaker is the id's first two fields (`tef_02338_...` -> tef_02338)."""
    for index in _require(sorted(root.rglob("line_index.tsv")), "line_index.tsv", root):
        for line in index.read_text(encoding="utf-8").splitlines():
            utt_id, _, text = line.partition("\t")
            candidates = [index.parent / f"{utt_id}.wav", index.parent / "wavs" / f"{utt_id}.wav"]
            wav = next((p for p in candidates if p.is_file()), None)
            if wav is not None and text:
                yield Utterance(utt_id, text, "_".join(utt_id.split("_")[:2]), str(wav))


def common_voice(root: Path) -> Iterator[Utterance]:
    """Mozilla Common Voice, Telugu (`cv-corpus-*/te`): `train.tsv`, `dev.tsv`, `test.tsv`
    (client_id, path, sentence, ...) and `clips/*.mp3`; the corpus's own speaker-disjoint splits."""
    import datasets as hfd

    tsvs = _require(sorted(root.rglob("train.tsv")), "train.tsv", root)
    folder = tsvs[0].parent
    splits = {"train": "train", "dev": "validation", "test": "test"}
    files = {
        name: str(folder / f"{name}.tsv") for name in splits if (folder / f"{name}.tsv").is_file()
    }
    tables = hfd.load_dataset("csv", data_files=files, delimiter="\t", quoting=3)  # 3: no quotes
    for name, table in tables.items():
        for row in table:
            clip = folder / "clips" / row["path"]
            if clip.is_file():
                yield Utterance(Path(row["path"]).stem, row["sentence"] or "",
                                row["client_id"][:16], str(clip), splits[name])  # fmt: skip


def indicvoices(root: Path) -> Iterator[Utterance]:
    """AI4Bharat IndicVoices, Telugu, as its Hugging Face parquet shards
    (`telugu/train-*.parquet`, `telugu/valid-*.parquet`; audio bytes inside). `valid` is split by
    speaker into validation and test: the corpus publishes no test set."""
    import datasets as hfd

    from telugu_s2s.recipes import speaker_split

    folder = next((p for p in (root / "telugu", root) if list(p.glob("*.parquet"))), None)
    if folder is None:
        raise FileNotFoundError(f"no telugu/*.parquet under {root}: is this IndicVoices?")
    files = {s: sorted(str(p) for p in folder.glob(f"{s}-*.parquet")) for s in ("train", "valid")}
    tables = hfd.load_dataset("parquet", data_files={k: v for k, v in files.items() if v})
    for name, table in tables.items():
        if isinstance(table.features["audio_filepath"], hfd.Audio):  # keep the encoded bytes
            table = table.cast_column("audio_filepath", hfd.Audio(decode=False))
        for i, row in enumerate(table):
            speaker = str(row["speaker_id"])
            split = "train" if name == "train" else ("validation" if speaker_split(speaker, 0.5) == "validation" else "test")  # fmt: skip
            audio = row["audio_filepath"]
            yield Utterance(Path(audio.get("path") or f"{name}_{i}").stem,
                            row.get("text") or row.get("verbatim") or "", speaker,
                            audio["bytes"], split)  # fmt: skip


CORPORA: dict[str, Callable[[Path], Iterator[Utterance]]] = {
    "indictts": indictts,
    "indicvoices": indicvoices,
    "common_voice": common_voice,
    "openslr66": openslr66,
}
