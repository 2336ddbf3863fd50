"""S2S evaluation: CER, batched scripted sessions, the protocol end to end on random tiny
models, the memory-off ablation (a spy on the model) and the `python -m telugu_s2s.eval` CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import telugu_s2s.evaluation.s2s as s2s_eval
from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.data.corpus import load_corpus
from telugu_s2s.data.datasets import load_split
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig
from telugu_s2s.data.tokens import silence_codes
from telugu_s2s.data.voices import load_synth_config
from telugu_s2s.evaluation import (
    ErrorRate,
    EvalModels,
    ProtocolConfig,
    cer,
    edit_distance,
    evaluate_s2s,
)
from telugu_s2s.evaluation.cer import normalize_text
from telugu_s2s.evaluation.s2s import (
    FirstCodebooks,
    SessionScript,
    encode_clip,
    plan_item,
    run_sessions,
)
from telugu_s2s.models.asr import AsrConfig, AsrModel
from telugu_s2s.models.s2s import S2SConfig, S2SModel
from telugu_s2s.models.speaker import SpeakerEncoder, SpeakerEncoderConfig
from telugu_s2s.paths import CONFIG_DIR, CORPUS_DIR, REPO_ROOT
from telugu_s2s.speakers import SpeakerBank, encoder_fingerprint, load_voice_metadata

torch.set_num_threads(1)
# 8 x 1024 codes: the random test codec's (CodecConfig defaults).
TINY_S2S = S2SConfig(
    num_codebooks=8, codebook_size=1024, d_model=32, num_layers=2, num_heads=2, context_frames=32,
    depth_d_model=16, depth_layers=1, depth_heads=2, speaker_dim=16, memory_attention_dim=8, memory_top_k=2,
)  # fmt: skip
TINY_SPEAKER = SpeakerEncoderConfig(
    channels=16, se_channels=8, mfa_channels=32, attention_channels=8, embedding_dim=16
)
FAST = ProtocolConfig(
    pause_frames=3, margin_frames=2, max_turns=7
)  # turns 5-6 depend on earlier ones
CER_KEYS = ("monologue_cer", "self_round_trip_cer", "user_transcript_cer", "context_cer_memory_on",
            "context_cer_memory_off", "style_cer_own", "style_cer_other")  # fmt: skip
FRACTION_KEYS = (
    "topic_accuracy",
    "topic_accuracy_dialog",
    "topic_accuracy_dialog_votes",
    "topic_accuracy_dialog_head",
    "emotion_accuracy",
    "speaker_id_accuracy",
    "f0_within_15pct",
    "style_differs",
)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, random_codec_dir) -> dict[str, Path]:
    """Random tiny S2S and speaker exports beside the random codec (memory gate opened)."""
    root = tmp_path_factory.mktemp("eval_models")
    torch.manual_seed(0)
    s2s = S2SModel(TINY_S2S)
    with torch.no_grad():
        s2s.memory.gate.fill_(2.0)  # so that the memory visibly changes the stream
    s2s.set_silence_codes(silence_codes(load_pretrained(random_codec_dir)))
    save_pretrained(s2s, root / "s2s")
    encoder = SpeakerEncoder(TINY_SPEAKER).eval()
    save_pretrained(encoder, root / "speaker")
    bank = SpeakerBank(TINY_SPEAKER.embedding_dim, encoder_fingerprint(encoder))
    for name, meta in load_voice_metadata().items():
        bank.enroll(name, torch.randn(1, TINY_SPEAKER.embedding_dim), meta)
    bank.save(root / "speaker")
    save_pretrained(AsrModel(AsrConfig(conv_channels=16, hidden=16, layers=1)), root / "asr")
    return {"s2s": root / "s2s", "codec": random_codec_dir, "speaker": root / "speaker",
            "asr": root / "asr"}  # fmt: skip


@pytest.fixture(scope="module")
def models(model_dirs) -> EvalModels:
    return EvalModels.load(model_dirs["s2s"], model_dirs["codec"], model_dirs["speaker"])


@pytest.fixture(scope="module")
def spied_run(models, tiny_dataset):
    """One evaluation of the first held-out dialog, recording what every model step was given."""
    runs: list[tuple[list[SessionScript], list]] = []  # per run_sessions: scripts, memory masks
    run, step = s2s_eval.run_sessions, models.s2s.step

    def run_spy(model, scripts, silence, *sampling):
        runs.append((scripts, []))
        return run(model, scripts, silence, *sampling)

    def step_spy(
        user_codes, speaker_emb=None, style_id=None, memory=None, memory_mask=None, **kwargs
    ):
        runs[-1][1].append(None if memory is None else memory_mask.clone())  # (B, M) or None
        return step(user_codes, speaker_emb, style_id, memory, memory_mask, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s2s_eval, "run_sessions", run_spy)
        patch.setattr(models.s2s, "step", step_spy)
        report = evaluate_s2s(models, tiny_dataset, "natural", limit_dialogs=1, protocol=FAST)
    return report, runs


def test_cer_known_cases() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0
    assert edit_distance("kitten", "sitting", most=1) == 2  # over the bound: most + 1
    assert edit_distance("kitten", "sitting", most=3) == 3
    one, two = ErrorRate(), ErrorRate()
    one.add("అఆ", "అఆఇఈ")  # 2 edits over 4 characters
    two.add("ఉ", "ఎఏ")  # 2 over 2
    pooled = ErrorRate.pooled([one, two])
    assert (pooled.edits, pooled.characters, pooled.pairs) == (4, 6, 2)
    assert pooled.value == pytest.approx(4 / 6) and math.isnan(ErrorRate.pooled([]).value)
    assert cer("నమస్కారం", "నమస్కారం") == 0.0
    assert cer("", "") == 0.0
    # Latin letters are outside the vocabulary and whitespace runs collapse.
    assert cer("  నమస్కారం  hello ", "నమస్కారం") == 0.0
    assert cer("అబ", "అబక") == pytest.approx(1 / 3)
    assert cer("అబకడ", "అ") == 3.0  # insertions can push a CER past 1
    rate = ErrorRate()
    assert math.isnan(rate.value)
    assert rate.add("అబ", "అబక") == pytest.approx(1 / 3)
    rate.add("చ", "డ")
    assert rate.value == pytest.approx((1 + 1) / (3 + 1))  # corpus level, not a mean of CERs
    assert rate.pairs == 2


def test_plan_lays_out_user_speech_pause_and_reply(models, tiny_dataset) -> None:
    codec = models.codec
    ds = DialogTimelines(  # hand-written dialogs: every reply in all four voices
        load_split(tiny_dataset, "natural"), codec.sample_rate, TimelineConfig(), train=False
    )
    silence = silence_codes(codec)
    protocol = ProtocolConfig(margin_frames=3, max_turns=2)
    plan = plan_item(ds, 1, codec, silence, protocol)
    assert (plan.voice, plan.user_voice) == ("ravi", ds.items[1][1])  # item 1 gets the second voice
    assert len(plan.turns) == 2 and plan.user_codes.shape[1] == plan.silent.shape[0]
    assert plan.silent[: protocol.lead_frames].all()
    for turn in plan.turns:
        start, end = turn.user_span
        assert torch.equal(
            plan.user_codes[:, start:end], encode_clip(codec, ds.audio(turn.user_row))
        )
        assert plan.silent[start : turn.reply_span[0]].all()  # the assistant listens
        assert turn.reply_span[0] - end == protocol.pause_frames
        assert not plan.silent[turn.reply_span[0] : turn.reply_span[1]].any()  # then speaks freely
        assert (
            plan.user_codes[:, turn.reply_span[0] : turn.reply_span[1]] == silence[:, None]
        ).all()
        longest = max(ds.meta["duration"][row] for row in turn.replies.values())  # of the styles
        expected = math.ceil(longest * codec.frame_rate) + protocol.margin_frames
        assert turn.reply_span[1] - turn.reply_span[0] == expected


def test_sessions_in_a_batch_match_sessions_alone(models) -> None:
    """Padding, forced silence and memory of one slot never leak into another."""
    model, silence = models.s2s, models.s2s.silence_codes.cpu()
    g = torch.Generator().manual_seed(1)

    def script(
        frames: int, spans: list[tuple[int, int]], use_memory: bool, style: int
    ) -> SessionScript:
        silent = torch.zeros(frames, dtype=torch.bool)
        for start, end in spans:
            silent[start : end + 2] = True
        speaker = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
        codes = torch.randint(0, 1024, (8, frames), generator=g)
        return SessionScript(codes, silent, speaker, style, spans, use_memory)

    scripts = [
        script(24, [(2, 8), (14, 18)], True, 1),
        script(17, [(1, 5)], False, 2),
        script(30, [(3, 9)], True, 0),
    ]
    together = run_sessions(model, scripts, silence)
    for script_alone, batched in zip(scripts, together, strict=True):
        (alone,) = run_sessions(model, [script_alone], silence)
        n = script_alone.user_codes.shape[1]
        assert torch.equal(alone.text[:n], batched.text[:n])
        assert torch.equal(alone.user_text[:n], batched.user_text[:n])
        assert torch.equal(alone.codes[:, :n], batched.codes[:, :n])
        assert len(alone.pooled) == len(script_alone.turn_spans)
        for a, b in zip(alone.pooled, batched.pooled, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    forced = scripts[0].silent  # silenced steps emit BLANK text and silence codes
    assert (together[0].text[:24][forced] == 1).all()


def test_evaluation_reports_every_metric_in_range(spied_run, tiny_dataset) -> None:
    report, _ = spied_run
    dialog = next(
        d for d in load_corpus(CORPUS_DIR) if d.dialog_id == report["per_turn"][0]["dialog"]
    )
    renderings = report["renderings"]
    held_out = sorted(load_synth_config()["held_out_user_voices"])
    assert (report["dialogs"], renderings) == (1, len(held_out))  # one dialog, held-out voices
    turns = dialog.turns[: FAST.max_turns]
    assert report["turns"] == len(report["per_turn"]) == renderings * len(turns)
    assert report["context_turns"] == renderings * sum(bool(t.depends_on) for t in turns) > 0
    assert report["style_turns"] == renderings * sum(t.formal is not None for t in turns) > 0
    assert report["held_out_voices_only"] and report["user_voices"] == held_out
    for key in CER_KEYS:
        assert isinstance(report[key], float) and report[key] >= 0.0, key
    for key in FRACTION_KEYS:
        assert 0.0 <= report[key] <= 1.0, key
    assert 0.0 <= report["sentiment_mae"] <= 2.0
    assert report["f0_median_ratio"] is None or report["f0_median_ratio"] > 0
    recall_turns = [t for t in report["per_turn"] if "facts" in t]
    assert report["slot_recall_turns"] == len(recall_turns) > 0  # facts read off the references
    for key in ("slot_recall_memory_on", "slot_recall_memory_off"):
        hits = [
            t["slot_recalled" + ("" if key.endswith("on") else "_memory_off")] for t in recall_turns
        ]
        assert report[key] == pytest.approx(sum(hits) / len(hits)), key
    assert report["slot_recall_far_turns"] <= report["slot_recall_turns"]
    assert 0 < report["generated_seconds"] < report["stepped_seconds"]
    assert report["wall_seconds"] > 0
    json.dumps(report, allow_nan=False)  # NaN became None: strict JSON
    turn = report["per_turn"][0]
    assert {
        "reference",
        "monologue",
        "user_transcript",
        "self_round_trip",
        "identified_voice",
    } <= set(turn)


def test_memory_off_sessions_get_an_empty_memory(spied_run) -> None:
    _, runs = spied_run
    scripts, masks = runs[0]  # the dialog's sessions; later runs are round trips
    off = [b for b, s in enumerate(scripts) if not s.use_memory]
    on = [b for b, s in enumerate(scripts) if s.use_memory]
    assert off and on and len(masks) == max(s.user_codes.shape[1] for s in scripts)
    assert all(mask is None or not mask[off].any() for mask in masks)
    last = masks[-1]  # every turn of the memory-on sessions is stored by the end
    assert last is not None and (last[on].sum(dim=-1) == len(scripts[on[0]].turn_spans)).all()
    for scripts, masks in runs[1:]:
        assert not any(s.use_memory for s in scripts) and all(m is None for m in masks)


def test_the_sessions_of_a_rendering_sample_from_one_seed(spied_run) -> None:
    """main, other_style and memory_off differ only in what they ablate, not in the dice."""
    _, runs = spied_run
    scripts, _ = runs[0]  # the renderings' sessions, rendering by rendering
    seeds = [s.seed for s in scripts]
    renderings = sorted(set(seeds))
    per_rendering = len(scripts) // len(renderings)
    assert per_rendering >= 2 and renderings == [FAST.seed + i for i in range(len(renderings))]
    assert seeds == [seed for seed in renderings for _ in range(per_rendering)]


def test_codec_stage_hands_over_to_eval_codec(monkeypatch, tmp_path, capsys) -> None:
    import telugu_s2s.eval as eval_cli

    eval_codec = pytest.importorskip("telugu_s2s.eval_codec")

    seen = []
    monkeypatch.setattr(eval_codec, "main", lambda argv: seen.append(argv) or {"ok": True})
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        codec_cfg = compose(
            "eval", overrides=["stage=codec", "codec.max_clips=3", f"output={tmp_path}/c.json"]
        )
        speaker_cfg = compose("eval", overrides=["stage=speaker"])
    GlobalHydra.instance().clear()
    assert eval_cli.evaluate(codec_cfg) == {"ok": True}
    argv = seen[0]
    assert (
        argv[argv.index("--max-clips") + 1] == "3"
        and argv[argv.index("--json") + 1] == f"{tmp_path}/c.json"
    )
    assert argv[argv.index("--checkpoint") + 1] == str(REPO_ROOT / "checkpoints" / "codec")
    assert eval_cli.evaluate(speaker_cfg) is None
    assert "no evaluation for stage=speaker" in capsys.readouterr().out


def test_cli_writes_the_json_report(model_dirs, tiny_dataset, tmp_path) -> None:
    output = tmp_path / "eval" / "s2s.json"
    command = [
        sys.executable, "-m", "telugu_s2s.eval", "stage=s2s", f"s2s_dir={model_dirs['s2s']}",
        f"codec_dir={model_dirs['codec']}", f"speaker_dir={model_dirs['speaker']}",
        f"asr_dir={model_dirs['asr']}",
        f"dataset_dir={tiny_dataset}", "split=natural", "limit_dialogs=1", "protocol.max_turns=1",
        "protocol.margin_frames=2", f"output={output}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["command"].startswith("python -m telugu_s2s.eval stage=s2s")
    voices = len(load_synth_config()["held_out_user_voices"])  # one turn in each held-out voice
    assert report["turns"] == voices and report["checkpoints"]["s2s_dir"] == str(model_dirs["s2s"])
    assert set(CER_KEYS + FRACTION_KEYS) <= set(report)
    # The judge (an untrained recognizer here) transcribed every generated reply.
    # It also gave the served user transcript of every user turn.
    for key in (
        "speaking_cer",
        "reply_audio_cer",
        "reply_audio_valid_cer",
        "user_transcript_served_cer",
    ):
        assert isinstance(report[key], float) and report[key] >= 0.0, key
    assert all("judge_transcript" in turn for turn in report["per_turn"])
    # Each voice's speaking CER: the turns in that voice, pooled as the total is.
    by_voice = report["speaking_cer_by_voice"]
    assert set(by_voice) == {turn["voice"] for turn in report["per_turn"]}
    for voice, value in by_voice.items():
        turns = [t for t in report["per_turn"] if t["voice"] == voice]
        edits = sum(t["speaking_cer"] * max(len(normalize_text(t["monologue"])), 1) for t in turns)
        chars = sum(len(normalize_text(t["monologue"])) for t in turns)
        assert value == (pytest.approx(edits / chars) if chars else None), voice
    assert all("user_transcript_served" in turn for turn in report["per_turn"])
    assert "monologue CER" in done.stdout and "speaking CER (judge vs monologue)" in done.stdout


def test_a_model_on_fewer_codebooks_hears_and_speaks_the_codecs_first_ones() -> None:
    from telugu_s2s.models.codec import CodecConfig, CodecModel

    torch.manual_seed(0)
    codec = CodecModel(CodecConfig()).eval()
    first4 = FirstCodebooks(codec, 4)
    audio = torch.randn(1, 1, 4 * codec.frame_size) * 0.1  # (B, 1, T)
    with torch.no_grad():
        codes = first4.encode(audio)  # (1, 4, 4)
        assert torch.equal(codes, codec.encode(audio)[:, :4])
        assert torch.allclose(first4.decode(codes), codec.decode(codes))
    assert (first4.sample_rate, first4.frame_size) == (codec.sample_rate, codec.frame_size)


def test_slot_recall_reads_the_fact_off_the_reference() -> None:
    from telugu_s2s.evaluation.recall import fact_words, recalls

    said = ["నేను సునీత", "ఫిబ్రవరిలో నా కాలేజీ మొదలవుతుంది, ఈ లోపే బేసిక్స్ పూర్తి చేయాలి"]
    question = "ఇంకొకటి, నా కాలేజీ ఎప్పుడు మొదలవుతుందన్నాను?"
    reference = "మీ కాలేజీ ఫిబ్రవరిలో మొదలవుతుందన్నారు, రోజూ సాధన చేస్తే అప్పటికి బేసిక్స్ పూర్తవుతాయి"
    facts = fact_words(reference, said, question)
    # what the question already says (కాలేజీ, మొదలవుతుంది) is not the fact; the month is
    assert "ఫిబ్రవరిలో" in facts and "కాలేజీ" not in facts and "మొదలవుతుందన్నారు" not in facts
    assert recalls("కాలేజీ ఫిబ్రవరి నుంచి", ["ఫిబ్రవరిలో"])  # another suffix, the same stem
    assert not recalls("కాలేజీ మార్చిలో మొదలవుతుంది", ["ఫిబ్రవరిలో"])
    assert not recalls("anything", [])  # no fact: not a recall
    assert fact_words(reference, [], question) == []
    # With the generator's slot values only they can be facts (not బేసిక్స్, said again)
    assert fact_words(reference, said, question, slots=["ఫిబ్రవరి", "సునీత"]) == ["ఫిబ్రవరి"]
    assert "బేసిక్స్" in facts


def test_words_to_repeat_are_the_users_words_that_the_nearest_valid_reply_repeats() -> None:
    from telugu_s2s.evaluation.recall import words_to_repeat

    user = "నమస్తే, నా పేరు ప్రవీణ్, రాజమండ్రిలో ఉంటున్నాను"
    valid = ["హాయ్ ప్రవీణ్, నీకు ఏ విషయంలో సాయం కావాలో చెప్పు", "సరే, చెప్పు"]
    assert words_to_repeat(user, "హలో విజయ్, నీకు ఏ విషయంలో సాయం కావాలో చెప్పు", valid) == [False]
    assert words_to_repeat(user, "హాయ్ ప్రవీణ్, నీకు ఏ సాయం కావాలో చెప్పు", valid) == [True]
    assert words_to_repeat(user, "సరే చెప్పు", valid) == []  # the nearest repeats nothing


def test_with_a_reply_planner_the_model_says_the_plans(models, tiny_dataset) -> None:
    import dataclasses

    from telugu_s2s.data.generate import GeneratorConfig, generate_dialogs
    from telugu_s2s.reply_planner import fit

    class Judge:  # every user turn "heard" as one greeting
        def transcribe(self, clips, sample_rate=None):
            return ["నమస్తే, నా పేరు రవి"] * len(clips)

    planner = fit([d for d in generate_dialogs(GeneratorConfig(dialogs=60, seed=2))])
    planned = dataclasses.replace(models, judge=Judge(), reply_planner=planner)
    report = evaluate_s2s(planned, tiny_dataset, "natural", limit_dialogs=1, protocol=FAST)
    turns = report["per_turn"]
    assert turns and all(t["plan"] for t in turns)
    assert 0.0 <= report["plan_valid_cer"] <= 1.0
    # the random model talks: its monologue is the plan, or the plan's start when the window ends
    assert all(t["plan"].startswith(t["monologue"]) and t["monologue"] for t in turns)
    assert any("రవి" in t["plan"] for t in turns)  # the name it heard, in a greeting
