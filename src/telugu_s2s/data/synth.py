"""Voice the corpus with espeak-ng and write a Hugging Face dataset.

    python -m telugu_s2s.data.synth                                   # make data
    python -m telugu_s2s.data.synth generated.dialogs=300 dialogs_per_topic=1  # small

The generated dialogs (train / validation / test) are voiced once each, in one user
voice and one assistant voice (`plan_jobs`); the 80 hand-written dialogs form the
`natural` test split. Renders are cached by content hash, so a rerun only renders what
changed. The dataset directory also holds `dialogs.jsonl` (every dialog, with its split)
and `telugu_s2s.json` (the build's settings).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from telugu_s2s.data.corpus import Dialog, Turn, load_corpus, validate
from telugu_s2s.data.generate import GeneratorConfig, generate_dialogs, write_jsonl
from telugu_s2s.data.voices import VoiceSpec, render, render_key, voices_from_config
from telugu_s2s.labels import EMOTIONS, TOPICS
from telugu_s2s.paths import CONFIG_DIR

log = logging.getLogger(__name__)
SPLITS: tuple[str, ...] = ("train", "validation", "test", "natural")


@dataclass(frozen=True)
class RenderJob:
    row_id: str
    split: str
    dialog_id: str
    turn_index: int
    role: str  # "user" | "assistant"
    style: str  # "default" | "formal" | "casual"
    text: str
    voice: VoiceSpec
    sample_rate: int
    cache_path: str


def natural_subset(dialogs: list[Dialog], per_topic: int | None) -> list[Dialog]:
    """The first `per_topic` hand-written dialogs of each topic (all with None)."""
    if not per_topic:
        return dialogs
    keep, count = [], Counter()
    for d in dialogs:
        count[d.topic] += 1
        if count[d.topic] <= per_topic:
            keep.append(d)
    return keep


def plan_jobs(dialogs: list[Dialog], cfg) -> list[RenderJob]:
    """Every render the dataset needs, in a deterministic order.

    A generated dialog (it carries its split) is voiced once: its user in one user voice
    (held-out voices for validation and test) with per-dialog pitch, rate and formant, and
    its voiced replies in one assistant voice. A hand-written dialog goes to the `natural`
    test split: its user in every held-out voice, every reply and variant in all four
    assistant voices.
    """
    voices = voices_from_config(cfg)
    held_out = list(cfg["held_out_user_voices"])
    train_users = [v for v in cfg["user_voices"] if v not in held_out]
    assistants = list(cfg["assistant_voices"])
    sr, cache = int(cfg["sample_rate"]), Path(cfg["cache_dir"])
    jitter = cfg.get("user_jitter") or {"rate": 0, "pitch": 0}
    per_dialog = cfg.get("user_dialog_jitter") or {"rate": 0, "pitch": 0, "formant": 0.0}
    jobs = []

    def add(split, d, t, role, style, text, voice):
        row_id = f"{d.dialog_id}_t{t.index:02d}_{role}_{style}_{voice.name}"
        if role == "user":  # per-utterance jitter, seeded by the row so reruns match
            rng = random.Random(f"{cfg['seed']}:{row_id}")
            voice = voice.jittered(
                rng.randint(-jitter["rate"], jitter["rate"]),
                rng.randint(-jitter["pitch"], jitter["pitch"]),
            )
        key = render_key(text, voice, sr)
        path = str(cache / key[:2] / f"{key}.flac")
        jobs.append(
            RenderJob(row_id, split, d.dialog_id, t.index, role, style, text, voice, sr, path)
        )

    for d in dialogs:
        rng = random.Random(f"{cfg['seed']}:{d.dialog_id}")
        if d.split is None:  # hand-written
            for t in d.turns:
                for name in held_out:
                    add("natural", d, t, "user", "default", t.user, voices[name])
                styles = [("default", t.assistant)]
                if cfg["render_style_variants"] and t.formal:
                    styles += [("formal", t.formal), ("casual", t.casual)]
                for name in assistants:
                    for style, text in styles:
                        add("natural", d, t, "assistant", style, text, voices[name])
            continue
        user = voices[rng.choice(train_users if d.split == "train" else held_out)]
        user = user.jittered(
            rng.randint(-per_dialog["rate"], per_dialog["rate"]),
            rng.randint(-per_dialog["pitch"], per_dialog["pitch"]),
            1.0 + rng.uniform(-per_dialog["formant"], per_dialog["formant"]),
        )
        assistant = voices[rng.choice(assistants)]
        for t in d.turns:
            add(d.split, d, t, "user", "default", t.user, user)
            add(d.split, d, t, "assistant", d.style or "default", t.assistant, assistant)
    return jobs


def render_job(job: RenderJob) -> bool:
    """Render one job into the cache (FLAC + word timings). Returns False if cached."""
    path = Path(job.cache_path)
    if path.exists() and path.with_suffix(".json").exists():
        return False
    audio, raw = render(job.text, job.voice, job.sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.flac")
    sf.write(tmp, audio, job.sample_rate, subtype="PCM_16", format="FLAC")
    meta = {
        "word_starts_ms": list(raw.word_starts_ms),
        "word_chars": [list(w) for w in raw.word_chars],
        "num_samples": int(audio.shape[0]),
    }
    path.with_suffix(".json").write_text(json.dumps(meta))
    tmp.replace(path)  # atomic: an interrupted run never leaves a half-written render
    return True


def render_all(jobs: list[RenderJob], num_workers: int) -> int:
    """Render every uncached job across `num_workers` processes, with a progress bar."""
    todo = [j for j in jobs if not Path(j.cache_path).exists()]
    log.info(
        "%d renders planned, %d cached, %d to render", len(jobs), len(jobs) - len(todo), len(todo)
    )
    if not todo:
        return 0
    if num_workers <= 1:
        for job in tqdm(todo, desc="synth", unit="utt"):
            render_job(job)
        return len(todo)
    with mp.get_context("spawn").Pool(num_workers) as pool:
        for _ in tqdm(
            pool.imap_unordered(render_job, todo, chunksize=16),
            total=len(todo),
            desc="synth",
            unit="utt",
        ):
            pass
    return len(todo)


def features():
    import datasets as hfd

    return hfd.Features({
        "id": hfd.Value("string"),
        # Struct-compatible with `datasets.Audio(decode=False)`; decoded with soundfile
        # (telugu_s2s.data.datasets.decode_audio) so that torchcodec is not required.
        "audio": {"bytes": hfd.Value("binary"), "path": hfd.Value("string")},
        "sampling_rate": hfd.Value("int32"),
        "duration": hfd.Value("float32"),
        "text": hfd.Value("string"),
        "speaker": hfd.Value("string"),
        "role": hfd.Value("string"),
        "style": hfd.Value("string"),
        "dialog_id": hfd.Value("string"),
        "turn_index": hfd.Value("int32"),
        "topic": hfd.ClassLabel(names=list(TOPICS)),
        "sentiment": hfd.Value("float32"),
        "emotion": hfd.ClassLabel(names=list(EMOTIONS)),
        "depends_on": hfd.Sequence(hfd.Value("int32")),
        "memory": hfd.Value("string"),
        # Assistant rows: every valid reply in the row's style (the voiced one among them).
        "valid_replies": hfd.Sequence(hfd.Value("string")),
        "word_starts_ms": hfd.Sequence(hfd.Value("int32")),
        "word_char_start": hfd.Sequence(hfd.Value("int32")),
        "word_char_len": hfd.Sequence(hfd.Value("int32")),
    })  # fmt: skip


def _valid_replies(t: Turn, job: RenderJob) -> list[str]:
    if job.role != "assistant":
        return []
    if t.valid_replies and job.style in t.valid_replies:
        return list(t.valid_replies[job.style])
    return [job.text]


AUDIO_DIR = "audio"  # inside the dataset directory: the FLAC files its rows point to


def _audio_path(job: RenderJob, dataset_dir: Path) -> Path:
    name = Path(job.cache_path).name
    return dataset_dir / AUDIO_DIR / name[:2] / name


def _link_audio(jobs: list[RenderJob], dataset_dir: Path) -> None:
    """Hard-link each render into the dataset (a copy across file systems): the dataset
    stays whole if the render cache is deleted, and costs no extra disk beside it."""
    for job in jobs:
        target = _audio_path(job, dataset_dir)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(job.cache_path, target)
        except OSError:
            shutil.copyfile(job.cache_path, target)


def _rows(jobs: list[RenderJob], turns: dict, dataset_dir: str):
    for job in jobs:
        path = Path(job.cache_path)
        meta = json.loads(path.with_suffix(".json").read_text())
        t = turns[(job.dialog_id, job.turn_index)]
        yield {
            "id": job.row_id,
            "audio": {"bytes": None, "path": str(_audio_path(job, Path(dataset_dir)))},
            "sampling_rate": job.sample_rate,
            "duration": meta["num_samples"] / job.sample_rate,
            "text": job.text,
            "speaker": job.voice.name,
            "role": job.role,
            "style": job.style,
            "dialog_id": job.dialog_id,
            "turn_index": job.turn_index,
            "topic": t.topic,
            "sentiment": t.sentiment,
            "emotion": t.emotion,
            "depends_on": list(t.depends_on),
            "memory": t.memory or "",
            "valid_replies": _valid_replies(t, job),
            "word_starts_ms": meta["word_starts_ms"],
            "word_char_start": [w[0] for w in meta["word_chars"]],
            "word_char_len": [w[1] for w in meta["word_chars"]],
        }


def write_dataset(jobs: list[RenderJob], dialogs: list[Dialog], output_dir: str | Path, info: dict):
    """Write the DatasetDict to `output_dir` atomically. Rows point to their audio by
    absolute path, in `output_dir/audio/` (so a moved dataset is rebuilt: `make data`)."""
    import datasets as hfd

    output_dir = Path(output_dir).resolve()
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    arrow_cache = output_dir.with_name(output_dir.name + ".arrow-cache")
    shutil.rmtree(tmp, ignore_errors=True)
    turns = {(t.dialog_id, t.index): t for d in dialogs for t in d.turns}
    _link_audio(jobs, tmp)
    splits = {}
    for split in SPLITS:
        split_jobs = [j for j in jobs if j.split == split]
        if split_jobs:  # streamed to Arrow
            splits[split] = hfd.Dataset.from_generator(
                _rows, gen_kwargs={"jobs": split_jobs, "turns": turns, "dataset_dir": str(output_dir)},
                features=features(), cache_dir=str(arrow_cache),
            )  # fmt: skip
    hfd.DatasetDict(splits).save_to_disk(str(tmp))
    (tmp / "telugu_s2s.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
    write_jsonl([_with_split(d, info["dialog_splits"][d.dialog_id]) for d in dialogs],
                tmp / "dialogs.jsonl")  # fmt: skip
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    shutil.rmtree(arrow_cache, ignore_errors=True)
    return {k: len(v) for k, v in splits.items()}


def _with_split(d: Dialog, split: str) -> Dialog:
    return d if d.split == split else dataclasses.replace(d, split=split)


def generator_config(cfg) -> GeneratorConfig | None:
    """The generator settings of a synth config (None when it voices no generated dialogs)."""
    gen = dict(cfg.get("generated") or {})
    return GeneratorConfig(**gen) if gen.get("dialogs") else None


def load_dialogs(cfg) -> list[Dialog]:
    """The hand-written dialogs (validated), then the generated ones."""
    natural = load_corpus(cfg["corpus_dir"])
    problems = validate(natural)
    gen_cfg = generator_config(cfg)
    generated = generate_dialogs(gen_cfg) if gen_cfg else []
    if gen_cfg:
        problems += validate(generated, unique=False, max_turns=gen_cfg.max_turns)
    if problems:
        raise ValueError("corpus is invalid:\n" + "\n".join(problems))
    return natural_subset(natural, cfg.get("dialogs_per_topic")) + generated


def build(cfg) -> dict:
    """Generate and validate the dialogs, render what is missing and write the dataset."""
    dialogs = load_dialogs(cfg)
    jobs = plan_jobs(dialogs, cfg)
    rendered = render_all(jobs, int(cfg["num_workers"]))
    # Renders are content-addressed, so the plan's hash identifies the dataset's content.
    plan_hash = hashlib.sha1(
        "\n".join(f"{j.row_id} {j.cache_path}" for j in jobs).encode()
    ).hexdigest()[:16]
    info_path = Path(cfg["output_dir"]) / "telugu_s2s.json"
    if info_path.exists() and json.loads(info_path.read_text()).get("plan_hash") == plan_hash:
        log.info("dataset at %s is up to date (plan %s)", cfg["output_dir"], plan_hash)
        return {
            "rows": None,
            "renders": len(jobs),
            "rendered_now": rendered,
            "dialogs": len(dialogs),
            "plan_hash": plan_hash,
        }
    info = {
        "plan_hash": plan_hash,
        "seed": cfg["seed"],
        "dialogs": len(dialogs),
        "generated": dict(cfg.get("generated") or {}),
        "held_out_user_voices": list(cfg["held_out_user_voices"]),
        "dialog_splits": {d.dialog_id: d.split or "natural" for d in dialogs},
    }
    sizes = write_dataset(jobs, dialogs, cfg["output_dir"], info)
    return {
        "rows": sizes,
        "renders": len(jobs),
        "rendered_now": rendered,
        "dialogs": len(dialogs),
        "plan_hash": plan_hash,
    }


def main() -> None:
    import hydra
    from omegaconf import OmegaConf

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="synth")
    def _run(cfg) -> None:
        result = build(OmegaConf.to_container(cfg, resolve=True))
        log.info("dataset written to %s: %s", cfg.output_dir, json.dumps(result))

    _run()


if __name__ == "__main__":
    main()
