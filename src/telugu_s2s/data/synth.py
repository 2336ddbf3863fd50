"""Voice the corpus with espeak-ng and write a Hugging Face dataset.

    python -m telugu_s2s.data.synth                      # all dialogs (make data)
    python -m telugu_s2s.data.synth dialogs_per_topic=3  # a small debug build

Every assistant reply is rendered in the four assistant voices (plus its formal and
casual variants); every user utterance in `user_voices_per_dialog` training user
voices, or in the held-out user voices for validation and test dialogs. Renders are
cached by content hash, so a rerun only renders what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from telugu_s2s.data.corpus import EMOTIONS, TOPICS, Dialog, load_corpus, validate
from telugu_s2s.data.voices import VoiceSpec, render, render_key, voices_from_config
from telugu_s2s.paths import CONFIG_DIR

log = logging.getLogger(__name__)
SPLITS: tuple[str, ...] = ("train", "validation", "test")


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


def split_dialogs(
    dialogs: list[Dialog], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, str]:
    """Dialog id -> split. Stratified by topic so every split sees every topic."""
    rng = random.Random(seed)
    by_topic: dict[str, list[str]] = {}
    for d in dialogs:
        by_topic.setdefault(d.topic, []).append(d.dialog_id)
    assignment = {}
    for topic in sorted(by_topic):
        ids = sorted(by_topic[topic])
        rng.shuffle(ids)
        n_val = math.ceil(val_fraction * len(ids)) if len(ids) >= 3 else 0
        n_test = math.ceil(test_fraction * len(ids)) if len(ids) >= 3 else 0
        for i, dialog_id in enumerate(ids):
            assignment[dialog_id] = (
                "validation" if i < n_val else "test" if i < n_val + n_test else "train"
            )
    return assignment


def plan_jobs(dialogs: list[Dialog], cfg) -> list[RenderJob]:
    """Every render the dataset needs, in a deterministic order."""
    voices = voices_from_config(cfg)
    held_out = list(cfg["held_out_user_voices"])
    train_users = [v for v in cfg["user_voices"] if v not in held_out]
    assistants = list(cfg["assistant_voices"])
    splits = split_dialogs(dialogs, cfg["seed"], cfg["val_fraction"], cfg["test_fraction"])
    sr, cache = int(cfg["sample_rate"]), Path(cfg["cache_dir"])
    jitter = cfg.get("user_jitter") or {"rate": 0, "pitch": 0}
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
        split = splits[d.dialog_id]
        rng = random.Random(f"{cfg['seed']}:{d.dialog_id}")
        k = int(cfg["user_voices_per_dialog"])
        users = held_out if split != "train" else rng.sample(train_users, min(k, len(train_users)))
        for t in d.turns:
            for name in users:
                add(split, d, t, "user", "default", t.user, voices[name])
            styles = [("default", t.assistant)]
            if cfg["render_style_variants"] and t.formal:
                styles += [("formal", t.formal), ("casual", t.casual)]
            for name in assistants:
                for style, text in styles:
                    add(split, d, t, "assistant", style, text, voices[name])
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
        "word_starts_ms": hfd.Sequence(hfd.Value("int32")),
        "word_char_start": hfd.Sequence(hfd.Value("int32")),
        "word_char_len": hfd.Sequence(hfd.Value("int32")),
    })  # fmt: skip


def _rows(jobs: list[RenderJob], dialogs: list[Dialog], split: str):
    turns = {(t.dialog_id, t.index): t for d in dialogs for t in d.turns}
    for job in jobs:
        if job.split != split:
            continue
        path = Path(job.cache_path)
        meta = json.loads(path.with_suffix(".json").read_text())
        t = turns[(job.dialog_id, job.turn_index)]
        yield {
            "id": job.row_id,
            "audio": {"bytes": path.read_bytes(), "path": None},
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
            "word_starts_ms": meta["word_starts_ms"],
            "word_char_start": [w[0] for w in meta["word_chars"]],
            "word_char_len": [w[1] for w in meta["word_chars"]],
        }


def write_dataset(jobs: list[RenderJob], dialogs: list[Dialog], output_dir: str | Path, info: dict):
    """Write the DatasetDict (train/validation/test) to `output_dir` atomically."""
    import datasets as hfd

    output_dir = Path(output_dir)
    splits = {}
    for split in SPLITS:
        rows = list(_rows(jobs, dialogs, split))
        if rows:
            splits[split] = hfd.Dataset.from_list(rows, features=features())
    tmp = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    hfd.DatasetDict(splits).save_to_disk(str(tmp))
    (tmp / "telugu_s2s.json").write_text(json.dumps(info, ensure_ascii=False, indent=2))
    shutil.rmtree(output_dir, ignore_errors=True)
    tmp.rename(output_dir)
    return {k: len(v) for k, v in splits.items()}


def build(cfg) -> dict:
    """Validate the corpus, render what is missing and write the dataset. Returns its figures."""
    dialogs = load_corpus(cfg["corpus_dir"])
    problems = validate(dialogs)
    if problems:
        raise ValueError("corpus is invalid:\n" + "\n".join(problems))
    if cfg.get("dialogs_per_topic"):
        keep, count = [], {}
        for d in dialogs:
            count[d.topic] = count.get(d.topic, 0) + 1
            if count[d.topic] <= int(cfg["dialogs_per_topic"]):
                keep.append(d)
        dialogs = keep
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
        "held_out_user_voices": list(cfg["held_out_user_voices"]),
        "dialog_splits": split_dialogs(
            dialogs, cfg["seed"], cfg["val_fraction"], cfg["test_fraction"]
        ),
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
