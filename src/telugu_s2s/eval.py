"""Evaluation entry point (conf/eval.yaml):

    python -m telugu_s2s.eval stage=s2s [checkpoint_dir=checkpoints] [split=test] \\
        [limit_dialogs=N] [output=artifacts/eval/s2s.json] [protocol.margin_frames=12]
    python -m telugu_s2s.eval stage=codec [codec.max_clips=120]

`stage=s2s` runs `telugu_s2s.evaluation.s2s.evaluate_s2s`, writes its JSON report and
prints a table; `stage=codec` hands over to `telugu_s2s.eval_codec`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from telugu_s2s.paths import CONFIG_DIR, REPO_ROOT

log = logging.getLogger(__name__)

if not OmegaConf.has_resolver("repo_root"):  # as in train.py, without importing Lightning
    OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def _number(value: float | int | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def format_s2s_table(report: dict) -> str:
    """The S2S report as a readable table (the acceptance targets beside their figures)."""
    r, n = report, _number
    rows = [
        ("monologue CER (text channel)", n(r["monologue_cer"]), ""),
        ("speaking CER (judge vs monologue)", n(r["speaking_cer"]), "target <= 0.20; needs the judge"),
        *[(f"  in {voice}'s voice", n(v), "") for voice, v in (r.get("speaking_cer_by_voice") or {}).items()],
        ("reply audio CER (judge vs reference)", n(r["reply_audio_cer"]), ""),
        ("reply audio CER (judge vs nearest valid)", n(r["reply_audio_valid_cer"]), "target <= 0.30"),
        ("planned reply CER (text vs nearest valid)", n(r.get("plan_valid_cer")), "the reply planner"),
        ("user's words the reply repeats", n(r.get("words_repeated")), f"of {r.get('words_to_repeat')} that the nearest valid reply repeats"),
        ("self round trip (S2S user stream)", n(r["self_round_trip_cer"]), "measures the S2S listener too"),
        ("user-transcript CER, S2S hearing", n(r["user_transcript_cer"]), ", ".join(r["user_voices"])),
        ("user-transcript CER, served (judge)", n(r.get("user_transcript_served_cer")), "target <= 0.10; the server's final transcript"),
        ("topic accuracy, per turn", n(r["topic_accuracy"]), "from the 2nd turn"),
        ("topic accuracy, dialog so far", n(r.get("topic_accuracy_dialog")), "target >= 0.80; as the server names it"),
        ("  the S2S topic head alone", n(r.get("topic_accuracy_dialog_head")), "its log-probabilities summed"),
        ("  the head's most voted turn topic", n(r.get("topic_accuracy_dialog_votes")), ""),
        ("  text-only baseline (gold words)", n((r.get("topic_text_baseline") or {}).get("dialog_so_far_accuracy")), "dialog so far, from the 2nd turn"),
        ("sentiment MAE", n(r["sentiment_mae"]), ""),
        ("  text-only baseline (gold words)", n((r.get("topic_text_baseline") or {}).get("sentiment_mae")), "per turn"),
        ("emotion accuracy", n(r["emotion_accuracy"]), ""),
        ("  text-only baseline (gold words)", n((r.get("topic_text_baseline") or {}).get("emotion_accuracy")), "per turn"),
        ("context CER, memory on", n(r["context_cer_memory_on"]), f"{r['context_turns']} turns; on < off"),
        ("context CER, memory off", n(r["context_cer_memory_off"]), ""),
        ("slot recall beyond the window, memory on", n(r.get("slot_recall_far_memory_on")), f"{r.get('slot_recall_far_turns')} turns; target >= 0.80"),
        ("slot recall beyond the window, memory off", n(r.get("slot_recall_far_memory_off")), "target: 30 points below memory on"),
        ("requested speaker identified", n(r["speaker_id_accuracy"]), "target >= 0.90"),
        ("median F0 within 15% of target", n(r["f0_within_15pct"]), f"median ratio {n(r['f0_median_ratio'])}"),
        ("style: formal != casual", n(r["style_differs"]), f"{r['style_turns']} turns"),
        ("style CER, own reference", n(r["style_cer_own"]), "own < other"),
        ("style CER, other style's reference", n(r["style_cer_other"]), ""),
    ]  # fmt: skip
    width = max(len(name) for name, _, _ in rows)
    head = (
        f"S2S evaluation, split={r['split']}: {r['dialogs']} dialogs, {r['renderings']} renderings, "
        f"{r['turns']} turns; held-out user voices only: {r['held_out_voices_only']}"
    )
    body = [f"  {name:<{width}}  {value:>7}  {note}".rstrip() for name, value, note in rows]
    tail = (
        f"  generated {n(r['generated_seconds'], 1)} s of replies; stepped "
        f"{n(r['stepped_seconds'], 1)} s of audio in {n(r['wall_seconds'], 1)} s wall time"
    )
    return "\n".join([head, *body, tail])


def _command() -> str:
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return " ".join(["python -m telugu_s2s.eval", *overrides])


def _export(cfg: DictConfig, key: str, file: str, without: str) -> str | None:
    """The export folder `cfg[key]` if it holds `file`; else None, with a warning saying what
    the evaluation does `without` it."""
    directory = cfg.get(key)
    if directory and not (Path(directory) / file).exists():
        log.warning("no %s in %s: %s", file, directory, without)
        return None
    return directory


def evaluate_s2s_stage(cfg: DictConfig) -> dict:
    from telugu_s2s.evaluation.baselines import topic_text_baseline
    from telugu_s2s.evaluation.s2s import EvalModels, ProtocolConfig, evaluate_s2s
    from telugu_s2s.reply_planner import MODEL_FILE as PLANNER_FILE
    from telugu_s2s.text_topics import MODEL_FILE

    torch.set_num_threads(int(cfg.threads))
    asr_dir = _export(cfg, "asr_dir", "model.safetensors", "the judge's figures are left out")
    topics_dir = _export(cfg, "text_topics_dir", MODEL_FILE, "the S2S head names the topic")
    if topics_dir and asr_dir is None:
        log.warning("no judge: the text topic model reads the S2S model's own transcripts")
    planner_dir = _export(cfg, "reply_planner_dir", PLANNER_FILE, "the model says its own words")
    if planner_dir and asr_dir is None:
        log.warning("no judge: the reply planner needs the judge's transcripts; not used")
        planner_dir = None
    models = EvalModels.load(
        cfg.s2s_dir, cfg.codec_dir, cfg.speaker_dir, cfg.device, asr_dir, topics_dir, planner_dir
    )
    protocol = ProtocolConfig(**OmegaConf.to_container(cfg.protocol, resolve=True))
    report = evaluate_s2s(
        models, cfg.dataset_dir, cfg.split, cfg.limit_dialogs, protocol, per_turn=cfg.per_turn
    )
    try:  # the corpus's own ceiling for the topic head (gold text, no audio)
        baseline = topic_text_baseline(cfg.dataset_dir, cfg.split)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("no text topic baseline: %s", exc)
        baseline = None
    report = {
        "command": _command(),
        "checkpoints": {k: str(cfg[k]) for k in ("s2s_dir", "codec_dir", "speaker_dir")},
        "dataset_dir": str(cfg.dataset_dir),
        **report,
        "topic_text_baseline": baseline,
    }
    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_s2s_table(report))
    print(f"report written to {output}")
    return report


def evaluate_codec_stage(cfg: DictConfig) -> dict | None:
    from telugu_s2s import eval_codec

    argv = ["--checkpoint", str(cfg.codec_dir), "--dataset-dir", str(cfg.dataset_dir)]
    argv += ["--split", str(cfg.split), "--threads", str(cfg.threads), "--json", str(cfg.output)]
    if cfg.codec.max_clips is not None:
        argv += ["--max-clips", str(cfg.codec.max_clips)]
    if cfg.codec.codebooks:
        argv += ["--codebooks", *map(str, cfg.codec.codebooks)]
    entry = getattr(eval_codec, "main", None)
    if entry is None:
        print("run the codec evaluation with: python -m telugu_s2s.eval_codec " + " ".join(argv))
        return None
    return entry(argv)


def evaluate(cfg: DictConfig) -> dict | None:
    """Dispatch on the stage; returns the report (None when there is nothing to run here)."""
    if cfg.stage_name == "s2s":
        return evaluate_s2s_stage(cfg)
    if cfg.stage_name == "codec":
        return evaluate_codec_stage(cfg)
    print(
        f"no evaluation for stage={cfg.stage_name} here: the speaker stage logs test/eer and "
        "test/id_accuracy when it trains (python train.py experiment=speaker_tiny)"
    )
    return None


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
