"""The staged S2S recipe (docs/training_s2s.md): text, listen-and-speak, duplex.

Each stage's experiment trains a few steps on the tiny dataset and exports; the next stage
starts from that export with every tensor equal to it. The text items and the
single-utterance items are laid out as documented, the text path streams exactly, and
recall windows hold a recall turn with its fact beyond the attention window."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from telugu_s2s.checkpoint import load_pretrained, read_metadata, save_pretrained
from telugu_s2s.data.datamodules import TeluguDataModule
from telugu_s2s.data.datasets import load_split
from telugu_s2s.data.recall_windows import recall_window
from telugu_s2s.data.text import BLANK, PAD, TextTokenizer
from telugu_s2s.data.text_dialogs import TextDialogConfig, TextDialogs, load_dialogs
from telugu_s2s.data.timeline import DialogTimelines, TimelineConfig, collate_timelines
from telugu_s2s.data.voices import ASSISTANT_VOICES
from telugu_s2s.lit.s2s_module import retrieval_losses
from telugu_s2s.models.code_hearing import CodeHearing
from telugu_s2s.models.s2s import S2SConfig, S2SModel
from telugu_s2s.models.s2s_text import UserTextInput, text_hidden, text_inputs
from telugu_s2s.models.warm_start import load_matching_weights
from telugu_s2s.train import train

from .conftest import compose_train

TOK = TextTokenizer()
SMALL = S2SConfig(
    num_codebooks=2, codebook_size=16, d_model=32, num_layers=2, num_heads=2, context_frames=6,
    depth_d_model=16, depth_layers=1, depth_heads=2, speaker_dim=8, memory_attention_dim=8,
)  # fmt: skip


def normalised(text: str) -> str:
    return TOK.decode(TOK.encode(" ".join(text.split())))


def test_text_items_are_well_formed(tiny_dataset) -> None:
    dialogs = {d.dialog_id: d for d in load_dialogs(tiny_dataset, "train")}
    ds = TextDialogs(list(dialogs.values()), TextDialogConfig(max_frames=300), seed=1)
    for i in range(len(ds)):
        item = ds[i]
        user, asst, frames = item["user_text"], item["assistant_text"], item["num_frames"]
        assert user.shape == asst.shape == (frames,) and frames <= 300
        assert 0 <= item["speaker_id"] < len(ASSISTANT_VOICES) and (user != PAD).all()
        spoken = {"user": torch.zeros(frames, dtype=torch.bool)}
        spoken["asst"] = torch.zeros_like(spoken["user"])
        previous_end = 0
        for turn in item["turns"]:
            (us, ue), (as_, ae) = turn["user_span"], turn["assistant_span"]
            assert previous_end <= us < ue < as_ < ae <= frames  # a pause before each reply
            previous_end = ae
            spoken["user"][us:ue] = True
            spoken["asst"][as_:ae] = True
            source = dialogs[item["dialog_id"]].turns[turn["turn_index"]]
            assert TOK.collapse_frames(user[us:ue]).strip() == normalised(source.user)
            reply = TOK.collapse_frames(asst[as_:ae]).strip()
            valid = {normalised(r) for rs in (source.valid_replies or {}).values() for r in rs}
            assert reply in valid | {normalised(source.reply(s)) for s in ("formal", "casual")}
        assert (user[~spoken["user"]] == BLANK).all() and (asst[~spoken["asst"]] == BLANK).all()
        assert (asst[spoken["asst"]] != BLANK).any()
    evaluation = TextDialogs(list(dialogs.values()), TextDialogConfig(), train=False)
    assert torch.equal(evaluation[0]["assistant_text"], evaluation[0]["assistant_text"])
    with pytest.raises(FileNotFoundError, match="make data"):
        load_dialogs(tiny_dataset.parent, "train")


def test_text_path_streams_exactly_and_does_not_look_ahead() -> None:
    """Chunked calls inside `net.temporal.streaming` == one whole-sequence call."""
    torch.manual_seed(0)
    net, user_input = S2SModel(SMALL).eval(), UserTextInput(SMALL.text_vocab_size, SMALL.d_model)
    user = torch.randint(0, SMALL.text_vocab_size, (2, 15))
    prev = text_inputs(net, torch.randint(0, SMALL.text_vocab_size, (2, 15)))
    style = torch.tensor([0, 2])
    with torch.no_grad():
        whole = text_hidden(net, user_input, user, prev, None, style)  # (2, 15, D)
        with net.temporal.streaming(2):
            chunks = [
                text_hidden(net, user_input, user[:, a:b], prev[:, a:b], None, style)
                for a, b in ((0, 1), (1, 5), (5, 12), (12, 15))
            ]
        changed = user.clone()
        changed[:, 9] = (changed[:, 9] + 1) % SMALL.text_vocab_size
        later = text_hidden(net, user_input, changed, prev, None, style)
    torch.testing.assert_close(torch.cat(chunks, dim=1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(later[:, :9], whole[:, :9], atol=0, rtol=0)
    assert not torch.allclose(later[:, 9], whole[:, 9])


def test_listen_and_speak_items(tiny_dataset, random_codec_dir) -> None:
    dm = TeluguDataModule(
        "s2s_listen_speak", str(tiny_dataset), batch_size=4, codec_dir=str(random_codec_dir),
        precompute_tokens=False, num_codebooks=4,
    )  # fmt: skip
    dm.setup()
    ds = dm.datasets["validation"]
    silence = ds.silence[:, None]  # (K, 1)
    tasks = set()
    roles = ds.meta["role"]
    picks = [i for i, r in enumerate(roles) if r == "user"][:6]
    picks += [i for i, r in enumerate(roles) if r == "assistant"][:6]
    for i in picks:
        item, row = ds[i], ds.rows[i]
        tasks.add(item["task"])
        codes = ds.codes[i][:4].long()  # the utterance encoded on its own
        lead, n = 2, codes.shape[1]  # evaluation items: a fixed lead
        heard = item["task"] == "listen"
        own, other = ("user", "assistant") if heard else ("assistant", "user")
        assert torch.equal(item[f"{own}_codes"][:, lead : lead + n], codes)
        assert (item[f"{own}_codes"][:, :lead] == silence).all()
        assert (item[f"{other}_codes"] == silence).all() and (item[f"{other}_text"] == BLANK).all()
        # The whole text, even where it outlasts the audio, then `tail_frames` of silence.
        assert TOK.collapse_frames(item[f"{own}_text"]).strip() == normalised(row["text"])
        assert (item[f"{own}_text"][-ds.cfg.tail_frames :] == BLANK).all()
        assert heard == (row["role"] == "user")  # evaluation: user rows heard, replies spoken
        if heard:
            assert [t["user_span"] for t in item["turns"]] == [(lead, lead + n)]
            assert item["turns"][0]["topic"] == row["topic"]
        else:
            assert item["turns"] == [] and ASSISTANT_VOICES[item["speaker_id"]] == row["speaker"]
    assert tasks == {"listen", "speak"}
    batch = next(iter(dm.val_dataloader()))
    assert batch["user_codes"].shape[:2] == (4, 4) and "user_audio" not in batch


def test_text_spill_keeps_the_characters_that_outlast_the_audio(tiny_dataset) -> None:
    rows = load_split(tiny_dataset, "validation")

    def texts(spill: int) -> tuple[list[str], list[str]]:
        item = DialogTimelines(rows, 16000, TimelineConfig(text_spill_frames=spill), train=False)[0]
        said = [
            TOK.collapse_frames(item[f"{who}_text"][a : b + spill]).strip()
            for t in item["turns"]  # no barge-in in evaluation items
            for who, (a, b) in (("user", t["user_span"]), ("assistant", t["assistant_span"]))
        ]
        whole = [
            normalised(t[f"{who}_text"]) for t in item["turns"] for who in ("user", "assistant")
        ]
        return said, whole

    cut, whole = texts(0)
    assert all(w.startswith(c) for w, c in zip(whole, cut, strict=True))
    assert sum(map(len, cut)) < sum(map(len, whole))  # the audio ends before some texts do
    assert texts(12) == (whole, whole)


def test_recall_window_keeps_the_fact_beyond_the_gap() -> None:
    turns = list(range(9))
    seconds = {t: 3.0 for t in turns}
    rng = np.random.default_rng(0)
    args = {"user_seconds": seconds, "reply_seconds": seconds, "pause_seconds": 1.0, "rng": rng}
    # All of turns 1..7 fit 60 s: nothing is dropped.
    assert recall_window(turns, {7: 1}, budget_seconds=60, min_gap_seconds=12, **args) == list(
        range(1, 8)
    )
    # 30 s: the fact, the turns after it until 12 s separate it from the reply, the recall.
    assert recall_window(turns, {7: 1}, budget_seconds=30, min_gap_seconds=12, **args) == [1, 2, 7]
    # A fact within the gap is not a memory example; a fact after the recall is not one either.
    assert recall_window(turns, {3: 2}, budget_seconds=60, min_gap_seconds=12, **args) is None
    assert recall_window(turns, {3: 5}, budget_seconds=60, min_gap_seconds=12, **args) is None


def test_recall_windows_put_the_fact_outside_the_attention_window(tiny_dataset) -> None:
    rows = load_split(tiny_dataset, "train")
    facts = {
        d.dialog_id: {t.index: t.depends_on[0] for t in d.turns if t.depends_on}
        for d in load_dialogs(tiny_dataset, "train")
    }
    cfg = TimelineConfig(max_seconds=48.0, recall_window_prob=1.0, recall_gap_seconds=12.0)
    ds = DialogTimelines(rows, 16000, cfg, seed=0, train=True)
    found = 0
    for i in range(len(ds)):
        item = ds[i]
        by_turn = {t["turn_index"]: t for t in item["turns"]}
        for t in item["turns"]:
            fact = facts[item["dialog_id"]].get(t["turn_index"])
            if fact in by_turn and t["assistant_span"][0] - by_turn[fact]["user_span"][1] > 125:
                found += 1
    dialogs_with_recall = sum(bool(f) for f in facts.values())
    assert dialogs_with_recall > 0 and found >= dialogs_with_recall // 2
    # The batch names, for each recall reply, the slot of the turn that holds its fact.
    marked = 0
    for i in range(len(ds)):
        item = ds[i]
        slots = collate_timelines([item])["fact_slot"][0].tolist()
        order = [t["turn_index"] for t in item["turns"]]
        for n, t in enumerate(item["turns"]):
            fact = facts[item["dialog_id"]].get(t["turn_index"])
            expected = order.index(fact) if fact in order[:n] else -1
            assert slots[n] == expected
            marked += expected >= 0
    assert marked >= found


def test_the_retrieval_loss_reads_the_memorys_weight_on_the_fact_turn() -> None:
    weights = torch.zeros(2, 6, 3)  # (B, F, N)
    weights[0, 3:5, 1] = torch.tensor([0.5, 0.25])  # item 0: turn 2 recalls turn 1, frames 3-4
    weights[1, :, 0] = 1.0
    span = torch.tensor([[[0, 1], [1, 2], [3, 5]], [[0, 2], [2, 4], [0, 0]]])  # (B, N, 2)
    fact = torch.tensor([[-1, -1, 1], [-1, -1, -1]])  # (B, N)
    out = retrieval_losses(weights, span, fact)
    assert out["fact_weight"].item() == pytest.approx(0.375)
    assert out["retrieval_nll"].item() == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)


def test_warm_start_reports_what_it_skipped(tmp_path) -> None:
    torch.manual_seed(0)
    source = S2SModel(SMALL)
    save_pretrained(source, tmp_path / "small", dtype="float16")
    other = S2SModel(S2SConfig(**{**SMALL.__dict__, "codebook_size": 32}))
    report = load_matching_weights(other, tmp_path / "small")
    assert "user_embedding.weight" in report.mismatched and "code_heads" in report.skipped
    assert "text_head.weight" in report.loaded and not report.missing
    torch.testing.assert_close(
        other.text_head.weight, source.text_head.weight.half().float(), atol=0, rtol=0
    )
    from telugu_s2s.models.codec import CodecConfig, CodecModel

    save_pretrained(CodecModel(CodecConfig()), tmp_path / "codec")
    with pytest.raises(ValueError, match="no tensor matches"):
        load_matching_weights(other, tmp_path / "codec")


def stage_config(
    experiment: str, dataset: Path, codec: Path, out: Path, init_from=None, hearing_from=None
):
    overrides = [
        f"experiment={experiment}", "trainer=debug", f"paths.dataset_dir={dataset}",
        f"export_dir={out / 'export'}", "trainer.max_steps=3", "trainer.max_time=null",
        "++trainer.val_check_interval=null", "trainer.check_val_every_n_epoch=1",
        "data.limit_eval_items=4", "test=false",
    ]  # fmt: skip
    if experiment != "s2s_text_tiny":
        overrides += [f"data.codec_dir={codec}", "data.precompute_tokens=false"]
    if init_from is not None:
        overrides.append(f"model.init_from={init_from}")
    if hearing_from is not None:
        overrides.append(f"model.hearing_from={hearing_from}")
    return compose_train(overrides, out)


def test_the_hearing_stage_exports_the_ear(tiny_dataset, random_codec_dir, tmp_path) -> None:
    cfg = stage_config("s2s_hear_tiny", tiny_dataset, random_codec_dir, tmp_path)
    metrics = train(cfg)
    ear = load_pretrained(Path(cfg.export_dir))
    assert isinstance(ear, CodeHearing) and read_metadata(Path(cfg.export_dir))["global_step"] == 3
    assert "val/cer" in metrics and torch.isfinite(torch.tensor(metrics["val/loss"]))
    # The S2S model's ear is built from the same fields: the listen-and-speak stage takes it whole.
    s2s = compose_train(["experiment=s2s_listen_speak_tiny"], tmp_path / "s2s").model.net.cfg
    assert asdict(ear.cfg) == asdict(hydra.utils.instantiate(s2s).hearing_config())


def test_a_stage_with_utterance_tasks_resumes_from_its_checkpoint(
    tiny_dataset, random_codec_dir, tmp_path
) -> None:
    """Its checkpoint holds the datamodule's `utterance_tasks` (a DictConfig): resuming
    once failed on torch.load's weights_only default."""
    first = train(stage_config("s2s_hear_tiny", tiny_dataset, random_codec_dir, tmp_path / "a"))
    (last,) = (tmp_path / "a").rglob("last.ckpt")
    cfg = stage_config("s2s_hear_tiny", tiny_dataset, random_codec_dir, tmp_path / "b")
    cfg.ckpt_path, cfg.trainer.max_steps = str(last), 5
    train(cfg)
    assert read_metadata(Path(cfg.export_dir))["global_step"] == 5 and "val/cer" in first


def test_each_stage_starts_from_the_previous_export(tiny_dataset, random_codec_dir, tmp_path):
    hearing = stage_config("s2s_hear_tiny", tiny_dataset, random_codec_dir, tmp_path / "ear")
    train(hearing)
    ear = load_file(str(Path(hearing.export_dir) / "model.safetensors"))
    previous = None
    for experiment in ("s2s_text_tiny", "s2s_listen_speak_tiny", "s2s_duplex_tiny"):
        cfg = stage_config(
            experiment, tiny_dataset, random_codec_dir, tmp_path / experiment, previous,
            hearing.export_dir if experiment == "s2s_listen_speak_tiny" else None,
        )  # fmt: skip
        if previous is not None:  # the network starts as the previous stage's export
            module = hydra.utils.instantiate(cfg.model)
            exported = load_file(str(previous / "model.safetensors"))
            report = module.init_report
            assert not report.mismatched and report.loaded
            # The text stage has no ear: only the ear and its projection start elsewhere.
            from_text = previous.parent.name == "s2s_text_tiny"
            assert all(n.startswith("hearing") for n in report.missing) and (
                bool(report.missing) == from_text
            )
            restarted = {"user_embedding.weight"} if cfg.model.get("user_embedding_from") else set()
            for name, tensor in module.net.state_dict().items():
                if name in restarted:  # from the codec's code vectors instead
                    assert not torch.equal(tensor, exported[name].to(tensor.dtype))
                elif cfg.model.get("hearing_from") and name.startswith("hearing."):  # the ear
                    expected = ear[name.removeprefix("hearing.")].to(tensor.dtype)
                    torch.testing.assert_close(tensor, expected, atol=0, rtol=0)
                elif name in exported:
                    expected = exported[name].to(tensor.dtype)
                    torch.testing.assert_close(tensor, expected, atol=0, rtol=0)
                else:  # only what the text stage has no use for: the ear's projection
                    assert name.startswith("hearing_proj.") and from_text
        metrics = train(cfg)
        export = Path(cfg.export_dir)
        meta = read_metadata(export)
        assert meta["global_step"] == 3 and meta["stored_dtype"] == "float16"
        assert torch.isfinite(torch.tensor(list(metrics.values()))).all(), metrics
        model = load_pretrained(export)
        assert isinstance(model, S2SModel) and model.cfg.num_codebooks == 4
        if experiment == "s2s_text_tiny":
            assert "val/reply_ce" in metrics and "user_input" not in str(
                list(load_file(str(export / "model.safetensors")))
            )
            assert model.cfg.codec_fingerprint == ""  # no codes in this stage
        else:  # the audio stages record whose codes they learned; serving checks it
            codec = load_pretrained(random_codec_dir)
            assert model.cfg.codec_fingerprint == codec.codes_fingerprint()
            model.check_codec(codec)
        previous = export


def test_the_duplex_stage_trains_a_copy_head_over_the_ear_and_the_memory(
    tiny_dataset, random_codec_dir, tmp_path
) -> None:
    cfg = stage_config("s2s_duplex_tiny", tiny_dataset, random_codec_dir, tmp_path)
    cfg.model.net.cfg.copy_head = cfg.model.net.cfg.copy_memory = True
    cfg.model.init_from = None
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(list(metrics.values()))).all(), metrics
    assert "val/copy_nll" in metrics  # the pointer's own loss (copy_weight)
    model = load_pretrained(Path(cfg.export_dir))
    assert model.copy_head is not None and model.copy_head.memory_key is not None
    tensors = load_file(str(Path(cfg.export_dir) / "model.safetensors"))
    assert {"copy_head.memory_key.weight", "copy_head.gate.bias"} <= set(tensors)


def test_memory_grad_lets_the_recall_loss_reach_the_remembered_turn() -> None:
    """With `memory_grad`, the loss of frames after a turn also trains how that turn is
    summarised: the first turn's user codes get a gradient through the memory as well."""
    from telugu_s2s.lit.s2s_module import S2SModule
    from telugu_s2s.paths import REPO_ROOT

    cfg = S2SConfig(**{**SMALL.__dict__, "speaker_dim": 192, "context_frames": 4})
    g = torch.Generator().manual_seed(0)
    frames, card = 16, SMALL.codebook_size
    batch = {
        "user_codes": torch.randint(0, card, (1, 2, frames), generator=g),
        "assistant_codes": torch.randint(0, card, (1, 2, frames), generator=g),
        "assistant_text": torch.randint(4, 40, (1, frames), generator=g),
        "user_text": torch.randint(4, 40, (1, frames), generator=g),
        "num_frames": torch.tensor([frames]), "speaker_id": torch.tensor([1]),
        "style_id": torch.tensor([0]), "user_span": torch.tensor([[[0, 3], [8, 10]]]),
        "turn_mask": torch.tensor([[True, True]]), "sentiment": torch.zeros(1, 2),
        "topic": torch.zeros(1, 2, dtype=torch.long), "emotion": torch.zeros(1, 2, dtype=torch.long),
        "turn_index": torch.tensor([[0, 1]]),
    }  # fmt: skip
    grads = {}
    for memory_grad in (False, True):
        torch.manual_seed(0)
        module = S2SModule(
            S2SModel(cfg), str(REPO_ROOT / "checkpoints" / "speaker"), memory_grad=memory_grad,
            analysis_weight=0.0,
        )  # fmt: skip
        module.net.cfg.speaker_dropout = 0.0
        module._losses(batch)["loss"].backward()
        grads[memory_grad] = module.net.user_embedding.weight.grad.clone()
    assert not torch.allclose(grads[True], grads[False])


def test_the_topic_loss_leaves_out_the_opening_turn() -> None:
    """A dialog's topic label is on every turn, but an opening greeting says nothing of it."""
    from telugu_s2s.lit.s2s_module import S2SModule
    from telugu_s2s.paths import REPO_ROOT

    cfg = S2SConfig(**{**SMALL.__dict__, "speaker_dim": 192})
    module = S2SModule(S2SModel(cfg), str(REPO_ROOT / "checkpoints" / "speaker"))
    hidden = torch.randn(1, 12, cfg.d_model)  # (B, F, D)
    spans = torch.zeros(1, 2, 12, dtype=torch.bool)  # (B, N, F)
    spans[0, 0, :4], spans[0, 1, 6:9] = True, True
    batch = {"turn_mask": torch.tensor([[True, True]]), "turn_index": torch.tensor([[0, 1]]),
             "topic": torch.tensor([[2, 5]]), "emotion": torch.tensor([[1, 1]]),
             "sentiment": torch.zeros(1, 2)}  # fmt: skip
    before = module._analysis_losses(hidden, spans, batch)["topic_ce"]
    batch["topic"][0, 0] = 7  # the opening's label: no effect
    assert torch.equal(module._analysis_losses(hidden, spans, batch)["topic_ce"], before)
    batch["topic"][0, 1] = 7  # a later turn's label: it counts
    assert not torch.equal(module._analysis_losses(hidden, spans, batch)["topic_ce"], before)


def test_the_text_stage_can_learn_the_users_next_character(tiny_dataset) -> None:
    """`user_lm_weight`: the user frames predict the user's next character (scaffolding that
    makes them carry what was said); a fixed batch's user LM CE falls when trained on alone."""
    from telugu_s2s.lit.s2s_text_module import S2STextModule
    from telugu_s2s.paths import REPO_ROOT

    torch.manual_seed(0)
    cfg = S2SConfig(**{**SMALL.__dict__, "speaker_dim": 192, "dropout": 0.0})
    speakers = str(REPO_ROOT / "checkpoints" / "speaker")
    assert "user_lm_ce" not in S2STextModule(S2SModel(cfg), speakers)._losses(
        next(iter(_text_loader(tiny_dataset)))
    )
    module = S2STextModule(S2SModel(cfg), speakers, text_weight=0.0, analysis_weight=0.0,
                           user_lm_weight=1.0)  # fmt: skip
    batch = next(iter(_text_loader(tiny_dataset)))
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        losses = module._losses(batch)
        first = losses["user_lm_ce"].item() if first is None else first
        assert torch.equal(losses["loss"], losses["user_lm_ce"])
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    assert losses["user_lm_ce"].item() < 0.6 * first


def _text_loader(dataset):
    dm = TeluguDataModule("s2s_text", str(dataset), batch_size=2)
    dm.setup()
    return dm.train_dataloader()


def test_user_code_embeddings_start_from_the_codecs_code_vectors() -> None:
    """Each embedding row is a fixed linear map of its code's vector, at the table's scale."""
    from telugu_s2s.models.codec import CodecConfig, CodecModel
    from telugu_s2s.models.warm_start import init_code_embedding

    torch.manual_seed(0)
    codec = CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=16))
    codec.train()(0.3 * torch.randn(2, 1, 4 * 1280))  # codebooks start on the data
    model = S2SModel(SMALL)  # 2 codebooks of 16 codes
    vectors = codec.code_vectors(SMALL.num_codebooks)  # (2, 16, 16)
    assert vectors.shape == (2, 16, 16)
    scale = model.user_embedding.weight.std()
    init_code_embedding(model.user_embedding, vectors)
    table = model.user_embedding.weight.detach()  # (2 * 16, D)
    flat = vectors.reshape(32, -1)
    fit = torch.linalg.lstsq(flat, table).solution  # table = flat @ W exactly
    torch.testing.assert_close(flat @ fit, table, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(table.std(), scale, rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="rows"):
        init_code_embedding(model.user_embedding, codec.code_vectors())  # 8 codebooks
