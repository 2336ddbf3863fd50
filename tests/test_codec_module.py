"""Codec training: discriminator shapes, GAN loss pieces, the LR schedule, the adversarial
path end to end (trainer=debug, no warm-up), and the acceptance of the trained tiny codec."""

from __future__ import annotations

import copy

import hydra
import pytest
import torch

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.lit.codec_module import CodecModule, warmup_cosine
from telugu_s2s.models.codec import CodecConfig, CodecModel
from telugu_s2s.modules.discriminators import (
    MultiScaleSTFTDiscriminator,
    STFTDiscriminatorConfig,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from telugu_s2s.paths import REPO_ROOT

from .conftest import compose_train

CHECKPOINT = REPO_ROOT / "checkpoints" / "codec"
DATASET = REPO_ROOT / "data" / "build" / "dataset_small"  # the small build `make test` makes


def test_discriminator_outputs_one_patch_per_resolution() -> None:
    cfg = STFTDiscriminatorConfig(filters=4, n_ffts=(256, 512), dilations=(1, 2, 4))
    disc = MultiScaleSTFTDiscriminator(cfg)
    audio = torch.randn(3, 1, 4000)  # (B, 1, T)
    out = disc(audio)
    assert len(out.logits) == len(out.features) == 2
    for n_fft, logits, features in zip(cfg.n_ffts, out.logits, out.features, strict=True):
        frames, bins = 4000 // (n_fft // 4) + 1, n_fft // 2 + 1
        assert logits.shape == (3, 1, frames, math_ceil_halvings(bins, 3))
        assert len(features) == 1 + len(cfg.dilations) + 1  # input conv, strided convs, last conv
        assert features[0].shape == (3, 4, frames, bins)
    # Each item is judged on its own: changing item 0 leaves item 1's logits alone.
    other = audio.clone()
    other[0] = torch.randn(1, 4000)
    assert torch.equal(disc(other).logits[0][1], out.logits[0][1])


def math_ceil_halvings(n: int, times: int) -> int:
    for _ in range(times):
        n = (n + 1) // 2  # stride 2, kernel 9, padding 4
    return n


@pytest.mark.parametrize("kind", ["hinge", "lsgan"])
def test_discriminator_loss_is_zero_only_when_it_separates(kind: str) -> None:
    sure_real, sure_fake = (
        [torch.full((2, 1, 5, 7), 1.0)],
        [torch.full((2, 1, 5, 7), -1.0 if kind == "hinge" else 0.0)],
    )
    assert float(discriminator_loss(sure_real, sure_fake, kind)) == 0.0
    assert float(discriminator_loss(sure_fake, sure_real, kind)) > 1.0  # swapped: maximally wrong
    # Fakes judged real: the generator has nothing to gain.
    assert float(generator_adversarial_loss(sure_real, kind)) == 0.0
    assert float(generator_adversarial_loss(sure_fake, kind)) >= 1.0
    with pytest.raises(ValueError):
        discriminator_loss(sure_real, sure_fake, "wasserstein")


def test_feature_matching_is_relative_and_only_moves_the_fake() -> None:
    real = [[torch.randn(2, 4, 6, 9) for _ in range(3)]]
    fake = [[(r + 0.1 * torch.randn_like(r)).requires_grad_() for r in real[0]]]
    assert float(feature_matching_loss(real, real)) == 0.0
    loss = feature_matching_loss(real, fake)
    scaled = feature_matching_loss([[10 * r for r in real[0]]], [[10 * f for f in fake[0]]])
    torch.testing.assert_close(loss, scaled, rtol=1e-4, atol=1e-6)  # scale-free per layer
    real_leaf = [[r.clone().requires_grad_() for r in real[0]]]
    feature_matching_loss(real_leaf, fake).backward()
    assert all(f.grad is not None for f in fake[0]) and all(r.grad is None for r in real_leaf[0])


def test_warmup_cosine_schedule() -> None:
    assert warmup_cosine(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.1) == pytest.approx(0.55)  # half-way down the cosine
    assert (
        warmup_cosine(100, 10, 100, 0.1)
        == warmup_cosine(10_000, 10, 100, 0.1)
        == pytest.approx(0.1)
    )
    assert warmup_cosine(500, 0, None, 0.1) == 1.0  # constant without decay steps


def test_adversarial_losses_switch_on_after_the_warm_up() -> None:
    net = CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=64))
    disc = MultiScaleSTFTDiscriminator(STFTDiscriminatorConfig(filters=4, n_ffts=(256,)))
    module = CodecModule(net, disc, adversarial_start_step=3)
    assert not module.adversarial
    module.generator_step.fill_(3)
    assert module.adversarial
    without_discriminator = CodecModule(net, None, adversarial_start_step=0)
    assert not without_discriminator.adversarial


def test_debug_run_trains_generator_and_discriminator(tiny_dataset, tmp_path) -> None:
    """trainer=debug with no warm-up: every batch steps both optimizers; samples are written."""
    overrides = [
        "stage=codec",
        "trainer=debug",
        f"paths.dataset_dir={tiny_dataset}",
        "model.adversarial_start_step=0",
        "model.stft_weight=1.0",
        "model.discriminator.cfg.filters=4",
        "model.discriminator.cfg.n_ffts=[256,512]",
        "+model.net.cfg.n_filters=4",
        "model.net.cfg.dimension=32",
        "model.net.cfg.codebook_size=64",
        "trainer.max_steps=-1",
        "data.batch_size=2",
        "data.crop_seconds=0.5",
    ]
    cfg = compose_train(overrides, tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    module: CodecModule = hydra.utils.instantiate(cfg.model)
    before_g, before_d = (
        copy.deepcopy(module.net.state_dict()),
        copy.deepcopy(module.discriminator.state_dict()),
    )
    trainer = hydra.utils.instantiate(
        cfg.trainer, logger=hydra.utils.instantiate(cfg.logger.csv), callbacks=[]
    )
    trainer.fit(module, datamodule=datamodule)

    assert int(module.generator_step) == 3  # limit_train_batches
    assert trainer.global_step == 6  # Lightning counts both optimizers' steps
    changed = lambda before, after: any(not torch.equal(before[k], after[k]) for k in before)  # noqa: E731
    assert changed(before_g, module.net.state_dict()) and changed(
        before_d, module.discriminator.state_dict()
    )
    metrics = trainer.callback_metrics
    for key in (
        "train/discriminator",
        "train/adversarial",
        "train/feature",
        "train/stft",
        "val/mel_distance",
    ):
        assert key in metrics and torch.isfinite(metrics[key]), key
    assert 0 < float(metrics["val/codebook_usage_min"]) <= 1
    samples = tmp_path / "samples"
    assert (
        len(list(samples.glob("*_reconstruction.wav"))) == 2
        and len(list(samples.glob("*.png"))) == 2
    )


def test_decoder_only_fine_tuning_keeps_every_code(tiny_dataset, tmp_path) -> None:
    """Started from an export with encoder and codebooks frozen: the decoder learns, the
    encoder, codebooks (EMA state included) and so the codes of any input stay exactly as
    exported, which keeps a model trained on those codes valid. The speaker consistency
    term is trained against a speaker encoder that stays frozen (BatchNorm statistics too)."""
    from telugu_s2s.checkpoint import save_pretrained

    tiny = {"n_filters": 4, "dimension": 32, "codebook_size": 64}
    export = tmp_path / "export"
    save_pretrained(CodecModel(CodecConfig(**tiny)), export)
    overrides = [
        "stage=codec", "trainer=debug", f"paths.dataset_dir={tiny_dataset}",
        f"+model.init_from={export}", "+model.decoder_only=true",
        "+model.speaker_consistency=1.0", f"+model.speaker_dir={REPO_ROOT / 'checkpoints/speaker'}",
        "model.adversarial_start_step=0", "model.discriminator.cfg.filters=4",
        "model.discriminator.cfg.n_ffts=[256]", "+model.net.cfg.n_filters=4",
        "model.net.cfg.dimension=32", "model.net.cfg.codebook_size=64",
        "trainer.max_steps=-1", "data.batch_size=2", "data.crop_seconds=0.5",
    ]  # fmt: skip
    cfg = compose_train(overrides, tmp_path / "run")
    module: CodecModule = hydra.utils.instantiate(cfg.model)
    exported = load_pretrained(export)
    assert all(
        torch.equal(v, exported.state_dict()[k]) for k, v in module.net.state_dict().items()
    )  # started from the export
    probe = torch.randn(1, 1, 4 * module.net.frame_size)
    codes_before = module.net.encode(probe)
    speaker_before = copy.deepcopy(module.speaker_encoder.state_dict())
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    trainer.fit(module, datamodule=hydra.utils.instantiate(cfg.data))
    assert torch.isfinite(trainer.callback_metrics["val/speaker_distance"])
    speaker_after = module.speaker_encoder.state_dict()
    assert all(torch.equal(v, speaker_after[k]) for k, v in speaker_before.items())
    same = module.speaker_distance(probe, probe)
    assert same.shape == (1,) and float(same) == pytest.approx(0.0, abs=1e-5)

    after = module.net.state_dict()
    frozen = [k for k in after if k.startswith(("encoder.", "quantizer."))]
    assert frozen and all(torch.equal(after[k], exported.state_dict()[k]) for k in frozen)
    assert any(
        not torch.equal(after[k], exported.state_dict()[k])
        for k in after
        if k.startswith("decoder.")
    )
    assert torch.equal(module.net.encode(probe), codes_before)


def test_init_from_refuses_an_export_of_another_config(tmp_path) -> None:
    from telugu_s2s.checkpoint import save_pretrained

    save_pretrained(CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=64)), tmp_path)
    other = CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=32))
    with pytest.raises(ValueError, match="codebook_size"):
        CodecModule(other, None, init_from=str(tmp_path))


@pytest.mark.skipif(
    not (CHECKPOINT / "model.safetensors").exists() or not (DATASET / "dataset_dict.json").exists(),
    reason="no trained codec at checkpoints/codec (train it: make train-codec) or no dataset",
)
def test_trained_tiny_codec_meets_acceptance() -> None:
    """Acceptance of the committed tiny codec on the held-out test split: every codebook uses
    at least half of its entries over the whole split (encoding only, about 30 s), and on a
    fixed 60-clip subset the mel distance is at least 50% below a fresh model's (same
    config, same seed as training)."""
    from telugu_s2s.metrics.codec import (
        ReconstructionScorer,
        codebook_statistics,
        evaluate_tokenizer,
        fresh_like,
        load_clips,
    )

    torch.set_num_threads(1)
    codec = load_pretrained(CHECKPOINT)
    assert codec.bitrate <= 1500
    clips = load_clips(DATASET, "test", sample_rate=codec.sample_rate)
    usage = codebook_statistics(codec, clips)["codebook_usage"]
    assert min(usage) >= 0.5, usage

    subset = clips[:: max(1, len(clips) // 60)][:60]  # evenly spaced: every voice
    scorer = ReconstructionScorer(codec.sample_rate, with_stoi=False, with_pesq=False)
    trained = evaluate_tokenizer(codec, subset, scorer=scorer)["mel_distance"]
    initial = evaluate_tokenizer(fresh_like(codec, seed=1234), subset, scorer=scorer)[
        "mel_distance"
    ]
    assert trained <= 0.5 * initial, (trained, initial)
