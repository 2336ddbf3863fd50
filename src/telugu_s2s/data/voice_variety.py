"""Voice variety: training utterances in random espeak-ng voices that no split holds.

The judge and the ear read the held-out user voices worst where a voice's vocal tract is
unlike any of the 36 training voices (kaukovalta 12.6% CER against belinda 2.4%). Each
espeak-ng voice is a variant file: a scale of each formant's frequency, height and
width, a pitch band, roughness, flutter, voicing, breath, and one of two synthesizers.
`random_variant` draws those settings independently, in ranges a little wider than the
training voices' spread (not fitted to any held-out voice), so every variant is a new
vocal tract. The variants live in a private copy of espeak-ng's data folder (links to
the bundled files, plus the new `voices/!v/*`), which `Espeak.use_data_path` selects.

`python -m telugu_s2s.data.voice_variety --count 24000` renders that many training-split
rows' texts, each in one of `--voices` random variants at a random rate, pitch and
formant scale, into `data/build/voice_variety` (an HF dataset with the rows' columns).
The recognizer stage adds it to its training rows with `data.voice_variety_dir`.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import shutil
from pathlib import Path

import numpy as np

from telugu_s2s.data.voices import VoiceSpec, render

log = logging.getLogger(__name__)

VARIANT_PREFIX = "variety_"
DEFAULT_OUTPUT = Path("data/build/voice_variety")
MAX_VARIANTS = 300  # espeak-ng lists at most 349 voices, languages included


def random_variant(rng: np.random.Generator, name: str) -> str:
    """The text of one espeak-ng variant file with random voice settings."""
    female = rng.random() < 0.5
    base = rng.uniform(150, 260) if female else rng.uniform(70, 150)  # Hz
    lines = [
        "language variant",
        f"name {name}",
        f"gender {'female' if female else 'male'}",
        f"pitch {base:.0f} {base + rng.uniform(30, 150):.0f}",
    ]
    # Formant 0 is the voicing bar; 1-3 carry the vowels; 4-8 the timbre above them.
    for k, (lo, hi) in enumerate([(80, 150)] + [(65, 140)] * 3 + [(70, 130)] * 5):
        freq = rng.uniform(lo, hi)
        height = rng.uniform(50, 170)
        width = rng.uniform(55, 180)
        lines.append(f"formant {k} {freq:.0f} {height:.0f} {width:.0f}")
    lines += [
        f"roughness {int(rng.integers(0, 6))}",
        f"flutter {int(rng.choice([0, 1, 3, 5, 10, 20]))}",
        f"voicing {rng.uniform(30, 170):.0f}",
        f"consonants {rng.uniform(50, 150):.0f} {rng.uniform(50, 150):.0f}",
    ]
    if rng.random() < 0.3:  # breathy
        lines.append("breath " + " ".join(str(int(rng.integers(0, 8))) for _ in range(8)))
    if rng.random() < 0.3:
        lines.append(f"echo {int(rng.integers(20, 160))} {int(rng.integers(5, 30))}")
    if rng.random() < 0.35:  # the Klatt synthesizer instead of the default one
        lines.append(f"klatt {int(rng.choice([1, 2, 3, 4, 5, 6]))}")
    return "\n".join(lines) + "\n"


def variety_data_dir(root: str | Path, count: int, seed: int) -> Path:
    """A private espeak-ng data folder with `count` random variants; returns its path.

    It links every bundled entry but the voice lists: espeak-ng lists at most 349 voices,
    so the folder holds the Telugu language and the random variants only."""
    import espeakng_loader

    if not 0 < count <= MAX_VARIANTS:
        raise ValueError(f"count must be in 1..{MAX_VARIANTS} (espeak-ng's voice list)")
    bundled = Path(espeakng_loader.get_data_path())
    data = Path(root) / "espeak-ng-data"
    if data.exists():
        shutil.rmtree(data)
    (data / "voices" / "!v").mkdir(parents=True)
    (data / "lang" / "dra").mkdir(parents=True)
    shutil.copyfile(bundled / "lang" / "dra" / "te", data / "lang" / "dra" / "te")
    for entry in bundled.iterdir():
        if entry.name not in ("voices", "lang"):
            (data / entry.name).symlink_to(entry)
    rng = np.random.default_rng(seed)
    for i in range(count):
        name = f"{VARIANT_PREFIX}{i:03d}"
        (data / "voices" / "!v" / name).write_text(random_variant(rng, name))
    return data


def variety_voices(count: int, seed: int) -> list[VoiceSpec]:
    """One `VoiceSpec` per random variant, with espeak's rate, pitch and range drawn too."""
    rng = np.random.default_rng([seed, 1])
    return [
        VoiceSpec(
            name=f"{VARIANT_PREFIX}{i:03d}",
            espeak=f"te+{VARIANT_PREFIX}{i:03d}",
            pitch=int(rng.integers(20, 80)),
            range=int(rng.integers(20, 90)),
            rate=int(rng.integers(125, 185)),
            role="user",
            formant=round(float(rng.uniform(0.9, 1.12)), 3),
        )  # fmt: skip
        for i in range(count)
    ]


def _init_worker(data_path: str) -> None:
    from telugu_s2s.data.espeak import Espeak

    Espeak.use_data_path(data_path)


def _render_one(job: tuple[int, str, VoiceSpec, str, str]) -> dict:
    """Render one text into `staging`; the row names its path in the final folder."""
    import soundfile as sf

    index, text, voice, staging, final = job
    audio, raw = render(text, voice)
    name = f"{index:06d}.flac"
    sf.write(Path(staging) / name, audio, 16000, subtype="PCM_16", format="FLAC")
    return {
        "index": index, "path": str(Path(final) / name), "duration": audio.shape[0] / 16000,
        "speaker": voice.name, "word_starts_ms": list(raw.word_starts_ms),
        "word_char_start": [w[0] for w in raw.word_chars],
        "word_char_len": [w[1] for w in raw.word_chars],
    }  # fmt: skip


def build(
    dataset_dir: str | Path, output_dir: str | Path, count: int, voices: int = 300,
    seed: int = 0, workers: int = 1, max_seconds: float = 12.0,
):  # fmt: skip
    """Render `count` training rows' texts in random variants; writes an HF dataset (with
    the private espeak-ng folder it was spoken from)."""
    from telugu_s2s.data.datasets import load_split

    if count <= 0 or voices <= 0:
        raise ValueError("count and voices must be positive")
    rows = load_split(dataset_dir, "train")
    durations = np.asarray(rows["duration"])
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(durations <= max_seconds / 1.2)  # room for a slower rate
    picked = rng.choice(eligible, size=min(count, eligible.size), replace=False)
    return render_rows(rows.select(picked.tolist()), output_dir, voices, seed, workers, rng=rng)


def render_rows(
    source, output_dir: str | Path, voices: int, seed: int, workers: int = 1,
    id_prefix: str = "variety", rng: np.random.Generator | None = None,
):  # fmt: skip
    """Speak each row's `text` (an HF dataset with the dataset's columns) in one of `voices`
    random variants; writes the revoiced rows to `output_dir` whole or not at all. `rng`
    draws each row's variant (`build` passes its own, so its builds stay as they were)."""
    from telugu_s2s.data.espeak import Espeak

    output_dir = Path(output_dir).resolve()
    work = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    (work / "audio").mkdir(parents=True)
    rng = rng if rng is not None else np.random.default_rng([seed, 2])
    data_path = variety_data_dir(work, voices, seed)
    specs = variety_voices(voices, seed)
    jobs = [
        (i, text, specs[int(rng.integers(voices))], str(work / "audio"), str(output_dir / "audio"))
        for i, text in enumerate(source["text"])
    ]
    if workers <= 1:
        Espeak.use_data_path(str(data_path))
        rendered = [_render_one(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(workers, _init_worker, (str(data_path),)) as pool:
            rendered = pool.map(_render_one, jobs, chunksize=32)

    def _revoice(row: dict, index: int) -> dict:
        r = rendered[index]
        return row | {
            "id": f"{id_prefix}_{index:06d}", "audio": {"bytes": None, "path": r["path"]},
            "sampling_rate": 16000, "duration": r["duration"], "speaker": r["speaker"],
            "role": "user", "word_starts_ms": r["word_starts_ms"],
            "word_char_start": r["word_char_start"], "word_char_len": r["word_char_len"],
        }  # fmt: skip

    out = source.map(_revoice, with_indices=True, features=source.features)
    out.save_to_disk(str(work / "rows"))
    (work / "variety.json").write_text(
        json.dumps({"count": len(out), "voices": voices, "seed": seed}, indent=1)
    )
    shutil.rmtree(output_dir, ignore_errors=True)
    work.rename(output_dir)  # whole or not at all: an interrupted build leaves only `.tmp`
    return output_dir


def with_voice_variety(rows, directories):
    """Training rows (an HF split) followed by the voice-variety rows that one `build` (a
    folder) or several (a list of folders, e.g. built with other seeds) wrote."""
    import datasets as hfd

    if isinstance(directories, (str, Path)):
        directories = [directories]
    parts = [rows]
    for directory in directories:
        path = Path(directory) / "rows"
        if not path.exists():
            raise FileNotFoundError(
                f"no voice-variety rows in {directory}: "
                "build them with `python -m telugu_s2s.data.voice_variety`"
            )
        variety = hfd.load_from_disk(str(path))
        if variety.features != rows.features:
            raise ValueError(f"{path} has other columns than the dataset: rebuild it")
        parts.append(variety)
    log.info("training rows: %d, plus %d in random voices", len(rows), sum(map(len, parts[1:])))
    return hfd.concatenate_datasets(parts)


def run_cli(argv, description: str, build_rows, out: Path, count: int, seed: int) -> None:
    """The command line of a rendered-rows build (`build_rows` has `build`'s arguments)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dataset-dir", default="data/build/dataset")
    p.add_argument("--out", default=str(out))
    p.add_argument("--count", type=int, default=count)
    p.add_argument("--voices", type=int, default=300)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    done = build_rows(args.dataset_dir, args.out, args.count, args.voices, args.seed, args.workers)
    print(f"wrote {done}")


def main(argv: list[str] | None = None) -> None:
    run_cli(argv, __doc__.split("\n\n")[0], build, DEFAULT_OUTPUT, count=24000, seed=0)


if __name__ == "__main__":
    main()
