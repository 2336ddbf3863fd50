"""Benchmark scripts that `make bench` runs: their training configs resolve for every stage."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from telugu_s2s.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
import training  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


@pytest.mark.parametrize("stage", training.STAGES)
def test_training_benchmark_config_resolves_for_every_stage(stage, tmp_path):
    cfg = training.compose_for(f"{stage}_tiny", tmp_path / "data", 5, False, tmp_path / "out")
    # What measure() instantiates, resolved as Hydra would (interpolations and all).
    for section in ("trainer", "data", "model"):
        OmegaConf.to_container(cfg[section], resolve=True)
    assert cfg.trainer.max_steps == 5 and cfg.trainer.limit_val_batches == 0
    assert cfg.trainer.max_time is None and cfg.trainer.enable_checkpointing is False
    assert cfg.data.dataset_dir == str(tmp_path / "data") and not cfg.model.get("init_from")
    assert cfg.trainer.default_root_dir.startswith(str(tmp_path / "out"))


def test_learning_curves_join_a_warm_started_run_after_a_resumed_one(tmp_path):
    import json

    import curves

    def run(name: str, rows: list[tuple[int, float | str]]) -> Path:
        folder = tmp_path / name / "csv" / "version_0"
        folder.mkdir(parents=True)
        lines = ["step,train/loss,val/reply_ce"] + [f"{s},0.5,{v}" for s, v in rows]
        (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
        return tmp_path / name

    first = run("first", [(199, 2.0), (205, ""), (399, 1.5)])  # "" : a training-only row
    warm = run("warm", [(199, 1.2), (399, 1.0)])  # init_from: its steps start at 0 again
    resumed = run("resumed", [(599, 0.9)])  # ckpt_path: it goes on counting
    curves.main(["text", str(first), str(warm), str(resumed), "--out", str(tmp_path / "out")])
    points = json.loads((tmp_path / "out" / "text.json").read_text())["curves"]["val/reply_ce"]
    steps = [(p["step"], p["value"]) for p in points]
    assert steps == [(199, 2.0), (399, 1.5), (599, 1.2), (799, 1.0), (999, 0.9)]
    assert (tmp_path / "out" / "text.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        curves.main(["text", str(first), "--metrics", "val/topic_acc", "--out", str(tmp_path)])


def test_turn_taking_measures_when_the_model_starts_speaking() -> None:
    """The fake engine replies `reply_after_frames` quiet frames after speech: answered, with
    that delay; told never to reply, it is counted as not answered."""
    import numpy as np
    import turn_taking

    from tests.serving.fakes import FakeEngine

    speech = (0.1 * np.sin(np.arange(1280 * 10) * 0.2)).astype(np.float32)  # 10 frames
    result = turn_taking.answer(FakeEngine(reply_after_frames=3, reply_frames=5), speech, 2.0)
    assert result["answered"] and result["speaking_frames_after"] > 0
    assert 2 * 80 <= result["delay_ms"] <= 4 * 80
    silent = turn_taking.answer(FakeEngine(reply_after_frames=1000), speech, 2.0)
    assert not silent["answered"] and silent["delay_ms"] is None


def test_text_replies_scores_what_the_text_stage_says(tiny_dataset, tmp_path) -> None:
    """The benchmark's streamed greedy reply equals the whole-sequence recompute, and every
    turn of every dialog is scored against its valid replies."""
    import text_replies
    import torch
    from omegaconf import OmegaConf

    from telugu_s2s.data.text import BLANK, TextTokenizer
    from telugu_s2s.data.text_dialogs import TextDialogConfig, TextDialogs, load_dialogs
    from telugu_s2s.models.s2s_text import text_hidden, text_inputs
    from telugu_s2s.train import train

    from .conftest import compose_train

    cfg = compose_train(
        ["experiment=s2s_text_tiny", "trainer=debug", f"paths.dataset_dir={tiny_dataset}",
         f"export_dir={tmp_path / 'export'}", "trainer.max_steps=3", "trainer.max_time=null",
         "++trainer.val_check_interval=null", "data.limit_eval_items=2", "test=false"],
        tmp_path / "run",
    )  # fmt: skip
    train(cfg)
    (checkpoint,) = (tmp_path / "run").rglob("last.ckpt")
    (checkpoint.parent.parent / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, checkpoint.parent.parent / ".hydra" / "config.yaml")
    module, step = text_replies.load_text_stage(checkpoint)
    with torch.no_grad():  # never silent, so that the replies compared below hold characters
        module.net.text_head.bias[BLANK] = -1e4
    dialogs = load_dialogs(tiny_dataset, "validation")[:2]
    figures = text_replies.reply_figures(module, dialogs, temperature=0.0, top_k=50)
    items = TextDialogs(dialogs, TextDialogConfig(), train=False)
    assert step == 3 and figures["turns"] == sum(len(items[i]["turns"]) for i in range(2))
    # Each turn's nearest valid reply (the voiced one among them) is at most its voiced CER;
    # pooled over turns of other lengths the nearest can come out a little above.
    assert 0.0 <= figures["reply_valid_cer"] <= 1.05 * figures["reply_voiced_cer"]
    # every turn once, each in a window that starts with the exchange before it
    assert items.window(0, 1)["turns"][0]["turn_index"] == 1
    every = text_replies.reply_figures(module, dialogs, 0.0, 50, every_turn=True)
    assert every["turns"] == sum(len(d.turns) for d in dialogs)
    by_turn = every["reply_valid_cer_by_turn"]
    assert set(by_turn) == {"0", "1", "2+"} and all(0.0 <= v for v in by_turn.values())

    item, net = items[0], module.net  # the first reply, greedy, recomputed from frame 0 each step
    start, end = item["turns"][0]["assistant_span"]
    end = min(end + text_replies.TAIL_FRAMES, item["num_frames"])
    text, user = item["assistant_text"][None].clone(), item["user_text"][None]
    text[:, start:] = BLANK
    speaker = module.speakers[torch.tensor([item["speaker_id"]])]
    with torch.no_grad():
        for frame in range(start, end):
            hidden = text_hidden(
                net, module.user_input, user[:, : frame + 1],
                text_inputs(net, text)[:, : frame + 1], speaker, torch.tensor([item["style_id"]]),
            )  # fmt: skip
            text[0, frame] = net.text_head(hidden[0, -1]).argmax()
    said = TextTokenizer().collapse_frames(text[0, start:end].tolist())
    assert len(said) >= end - start - 1 and figures["examples"][0]["reply"] == said


def test_reply_retrieval_answers_with_the_nearest_training_turns_reply() -> None:
    from reply_retrieval import delexicalize, fill_slots, retrieval_figures, turn_records

    from telugu_s2s.data.corpus import Dialog, Turn

    def dialog(name: str, users: list[str], replies: list[str], split: str) -> Dialog:
        slots = {"name": ("name", name)}
        turns = tuple(
            Turn(name, i, u, r, "health", 0.0, "neutral", valid_replies={"casual": (r, r + " సరే")})
            for i, (u, r) in enumerate(zip(users, replies, strict=True))
        )
        return Dialog(name, turns, "health", split, "casual", slots)

    script = ["నమస్తే {}", "జ్వరం వచ్చింది", "తలనొప్పి కూడా ఉంది"]
    answers = ["హలో {}", "నీళ్ళు ఎక్కువ తాగు", "విశ్రాంతి తీసుకో {}"]

    def said(name: str, lines: list[str]) -> list[str]:
        return [line.replace("{}", name) for line in lines]

    train = turn_records([dialog("రాము", said("రాము", script), said("రాము", answers), "train")])
    assert train[2]["templates"]["casual"][0] == "విశ్రాంతి తీసుకో {name}"
    assert delexicalize("హలో సీత", {"name": ("name", "సీత")}) == "హలో {name}"
    assert fill_slots("హలో {name}", {"name": ("name", "సీత")}) == "హలో సీత"

    # a held-out name: the right template, filled with this dialog's name, is a CER of 0
    test = turn_records([dialog("సీత", said("సీత", script), said("సీత", answers), "validation")])
    figures = retrieval_figures(train, test)
    assert figures["template_seen_in_training"] == 1.0
    assert figures["reply_valid_cer_previous_reply"] == 0.0
    assert figures["examples_user"][2]["reply"] == "విశ్రాంతి తీసుకో సీత"

    # replies the training turns never gave: none of the templates was seen, the CER is high
    other = turn_records([dialog("సీత", said("సీత", script), ["అవును"] * 3, "validation")])
    figures = retrieval_figures(train, other)
    assert figures["template_seen_in_training"] == 0.0 and figures["reply_valid_cer_user"] > 0.5


def test_reply_planner_benchmark_plays_each_dialog_as_a_session(tmp_path) -> None:
    from reply_planner import play

    from telugu_s2s.data.generate import GeneratorConfig, generate_dialogs
    from telugu_s2s.reply_planner import fit
    from telugu_s2s.text_topics import fit as fit_topics

    dialogs = generate_dialogs(GeneratorConfig(dialogs=300, seed=9))
    train = [d for d in dialogs if d.split == "train"]
    held_out = [d for d in dialogs if d.split == "validation"][:6]
    planner, topics = fit(train), fit_topics(train)
    words = play(planner, topics, held_out, None)
    assert words["turns"] == sum(len(d.turns) for d in held_out)
    assert words["reply_valid_cer"] < 0.5 and set(words["reply_valid_cer_by_turn"]) == {
        "0",
        "1",
        "2+",
    }
    deaf = play(planner, topics, held_out, {})  # the judge heard nothing: worse replies
    assert deaf["reply_valid_cer"] > words["reply_valid_cer"]
    # Every turn heard as a name that no dialog has: the greetings say it back.
    other = {(d.dialog_id, t.index): "నమస్తే, నా పేరు జ్ఞానదీప్" for d in held_out for t in d.turns}
    assert play(planner, topics, held_out, other)["invented_values"] > words["invented_values"]


def test_judge_names_counts_the_values_a_transcript_keeps(tiny_dataset, tmp_path):
    import json

    import judge_names

    from telugu_s2s.data.datasets import load_split

    dialogs = {
        d.dialog_id for d in judge_names.load_corpus(tiny_dataset / "dialogs.jsonl") if d.slots
    }
    rows = [
        r for r in load_split(tiny_dataset, "validation")
        if r["role"] == "user" and r["dialog_id"] in dialogs
    ]  # fmt: skip
    heard = tmp_path / "heard.json"
    heard.write_text(json.dumps([r["text"] for r in rows]))  # a judge that hears every word
    perfect = judge_names.measure(tiny_dataset, "validation", Path("unused"), heard=heard)
    assert perfect["values"]["words"] > 0 and perfect["utterances"] == len(rows)
    assert perfect["values"]["exact"] == perfect["values"]["stem"] == 1.0
    assert perfect["other_words_5plus"]["exact"] == 1.0

    heard.write_text(json.dumps(["" for _ in rows]))  # one that hears nothing
    deaf = judge_names.measure(tiny_dataset, "validation", Path("unused"), heard=heard)
    assert deaf["values"]["exact"] == deaf["values"]["sound"] == deaf["values"]["stem"] == 0.0
    assert len(deaf["missed_examples"]) == min(12, deaf["values"]["words"])


def test_espeak_phonemes_tell_homophones_from_other_words():
    from telugu_s2s.data.espeak import Espeak

    espeak = Espeak.instance()
    assert espeak.phonemes("ప్రసన్న") == espeak.phonemes("ప్రసంన")  # anusvara before న
    assert espeak.phonemes("భోపాల్‌లో") == espeak.phonemes("భోపాల్లో")  # ZWNJ is not heard
    assert espeak.phonemes("ప్రవీణ్") != espeak.phonemes("ప్రవీన్")  # retroflex against dental
    assert espeak.phonemes("") == ""
