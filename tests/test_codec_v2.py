"""Codec v2 (Vocos-style decoder): streaming == offline, one frame of latency, no transposed
convolution, the semantic loss on the first codebook, configs, and a debug training run."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from torch import Tensor, nn

from telugu_s2s.checkpoint import load_pretrained, read_metadata, save_pretrained
from telugu_s2s.lit.codec_module import CodecModule
from telugu_s2s.models.codec import CodecConfig, CodecModel
from telugu_s2s.models.codec_v2 import CodecV2Config, CodecV2Model
from telugu_s2s.modules.conv import StreamingConvTranspose1d
from telugu_s2s.modules.istft import CausalISTFT
from telugu_s2s.modules.semantic import SemanticDistillation
from telugu_s2s.paths import REPO_ROOT

from .conftest import compose_train

FRAME = 1280
# Small but with the real frame structure (hop 160, n_fft 640): fast enough for many cases.
SMALL = dict(n_filters=4, dimension=16, codebook_size=64, decoder_frame_dim=32,
             decoder_dim=24, decoder_blocks=2)  # fmt: skip


@pytest.fixture(scope="module")
def codec() -> CodecV2Model:
    torch.manual_seed(0)
    return CodecV2Model(CodecV2Config(**SMALL)).eval()


@pytest.fixture(scope="module")
def audio() -> Tensor:
    torch.manual_seed(1)
    return 0.3 * torch.randn(2, 1, 6 * FRAME)  # (B, 1, T): 6 whole frames


def transposed_convs(module: nn.Module) -> list[nn.Module]:
    kinds = (nn.ConvTranspose1d, nn.ConvTranspose2d, StreamingConvTranspose1d)
    return [m for m in module.modules() if isinstance(m, kinds)]


def test_decoder_has_no_transposed_convolution() -> None:
    assert not transposed_convs(CodecV2Model(CodecV2Config()).decoder)
    assert not transposed_convs(CodecV2Model(CodecV2Config.base()).decoder)
    assert transposed_convs(CodecModel(CodecConfig()).decoder)  # v1's does: the check can fail


def test_shapes_frame_rate_and_bitrate(codec: CodecV2Model, audio: Tensor) -> None:
    assert (codec.sample_rate, codec.frame_size, codec.frame_rate) == (16000, FRAME, 12.5)
    codes = codec.encode(audio)
    assert codes.shape == (2, 8, 6) and codes.dtype == torch.long
    assert codec.decode(codes).shape == (2, 1, 6 * FRAME)
    assert codec.decode(codes[:, :2]).shape == (2, 1, 6 * FRAME)  # fewer codebooks decode too
    assert codec.encode(audio[..., :-1]).shape[-1] == 6  # a partial last frame is padded
    out = codec.train()(audio[..., : 2 * FRAME + 10])  # ragged: padded, decoded, trimmed
    codec.eval()
    assert out.audio.shape == (2, 1, 2 * FRAME + 10)
    assert out.first_codebook.shape == (2, 16, 3)
    assert CodecV2Config().bitrate == 1000 and CodecV2Config.base().bitrate == 1100
    assert CodecV2Config().vocos().hop_length == 160
    with pytest.raises(ValueError, match="divide"):
        CodecV2Config(decoder_upsample=7).vocos()


@pytest.mark.parametrize("frames_per_step", [[1], [2, 3], [3, 1, 2]])
def test_chunked_decode_equals_offline(
    codec: CodecV2Model, audio: Tensor, frames_per_step: list[int]
) -> None:
    codes = codec.encode(audio)
    offline = codec.decode(codes)
    outputs, start, i = [], 0, 0
    with codec.streaming(2):
        assert codec.decode_step(codes[..., :0]).shape == (2, 1, 0)
        while start < codes.shape[-1]:
            n = frames_per_step[i % len(frames_per_step)]
            outputs.append(codec.decode_step(codes[..., start : start + n]))
            start, i = start + n, i + 1
    torch.testing.assert_close(torch.cat(outputs, dim=-1), offline, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sizes", [[FRAME], [7, 333, 1000], [1, FRAME - 1, 2 * FRAME + 5]])
def test_streaming_round_trip_equals_offline(
    codec: CodecV2Model, audio: Tensor, sizes: list[int]
) -> None:
    offline = codec.decode(codec.encode(audio))
    outputs, start, i = [], 0, 0
    with codec.streaming(2):
        while start < audio.shape[-1]:
            chunk = audio[..., start : start + sizes[i % len(sizes)]]
            out = codec.decode_step(codec.encode_step(chunk))
            assert out.shape[-1] % FRAME == 0  # whole frames only: every sample is final
            outputs.append(out)
            start, i = start + chunk.shape[-1], i + 1
    torch.testing.assert_close(torch.cat(outputs, dim=-1), offline, atol=1e-5, rtol=0)


def test_one_frame_of_latency_and_causal_decoding(codec: CodecV2Model, audio: Tensor) -> None:
    with codec.streaming(2):
        assert codec.encode_step(audio[..., : FRAME - 1]).shape == (2, 8, 0)
        codes = codec.encode_step(audio[..., FRAME - 1 : FRAME])  # the frame's last sample
        assert codes.shape == (2, 8, 1) and codec.decode_step(codes).shape == (2, 1, FRAME)
    codes = codec.encode(audio)
    changed = codes.clone()
    changed[:, :, 3] = (changed[:, :, 3] + 1) % codec.cardinality
    out, out_changed = codec.decode(codes), codec.decode(changed)
    boundary = 3 * FRAME
    assert torch.equal(out[..., :boundary], out_changed[..., :boundary])  # the past is final
    assert not torch.allclose(  # the changed frame's own samples move at once
        out[..., boundary : boundary + FRAME], out_changed[..., boundary : boundary + FRAME]
    )


def test_istft_overlap_adds_the_tails_into_the_next_chunk() -> None:
    """Frames of a constant signal (DC only) overlap-add to that constant once the first
    window's tail has passed, offline and chunked alike; a single frame's tail is emitted
    with the next chunk, not before."""
    istft = CausalISTFT(n_fft=640, hop_length=160)
    spec = torch.zeros(1, 321, 16, dtype=torch.complex64)
    spec[:, 0] = 640.0  # irfft: ones over the whole window
    offline = istft(spec)  # (1, 16 * 160)
    torch.testing.assert_close(offline[:, 480:], torch.ones(1, 16 * 160 - 480))
    assert float(offline[:, :480].max()) < 1.0  # the stream's start fades in
    with istft.streaming(1):
        chunks = [istft(spec[..., j : j + 3]) for j in range(0, 16, 3)]
    torch.testing.assert_close(torch.cat(chunks, dim=-1), offline, atol=1e-6, rtol=0)
    single = spec.clone()
    single[..., 1:] = 0
    with istft.streaming(1):
        first, second = istft(single[..., :1]), istft(single[..., 1:2])
    assert first.shape == (1, 160) and float(second.abs().sum()) > 0  # the tail came later


def test_reset_restarts_one_session(codec: CodecV2Model, audio: Tensor) -> None:
    codes = codec.encode(audio)
    fresh = codec.decode(codes[..., 2:])
    continued = codec.decode(codes)[..., 2 * FRAME :]
    with codec.streaming(2):
        codec.decode_step(codes[..., :2])
        codec.reset_streaming(torch.tensor([True, False]))
        after = codec.decode_step(codes[..., 2:])
    torch.testing.assert_close(after[0], fresh[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(after[1], continued[1], atol=1e-5, rtol=0)
    assert not torch.allclose(after[1], fresh[1], atol=1e-4)  # item 1 kept its past


def test_save_load_round_trip_and_the_committed_codec_is_v2(tmp_path, audio: Tensor) -> None:
    torch.manual_seed(0)
    model = CodecV2Model(CodecV2Config(**SMALL))
    model.train()(audio)  # initialise the codebooks
    model.eval()
    save_pretrained(model, tmp_path / "v2")
    loaded = load_pretrained(tmp_path / "v2")
    assert isinstance(loaded, CodecV2Model) and loaded.cfg == model.cfg
    codes = model.encode(audio)
    assert torch.equal(loaded.encode(audio), codes)
    torch.testing.assert_close(loaded.decode(codes), model.decode(codes), atol=0, rtol=0)
    served = REPO_ROOT / "checkpoints" / "codec"
    if (served / "model.safetensors").exists():  # the committed codec is v2, with no upsampler
        committed = load_pretrained(served)
        assert type(committed) is CodecV2Model and not transposed_convs(committed.decoder)


def test_v2_decoder_on_frozen_v1_codes(tmp_path, audio: Tensor) -> None:
    """init_codes_from + decoder_only: the v2 codec starts from a v1 export's encoder and
    codebooks and makes exactly its codes, so S2S tokens built on them stay valid."""
    torch.manual_seed(0)
    tiny = {k: SMALL[k] for k in ("n_filters", "dimension", "codebook_size")}
    v1 = CodecModel(CodecConfig(**tiny))
    v1.train()(audio)  # move the codebooks off their initial state
    save_pretrained(v1.eval(), tmp_path / "v1")
    net = CodecV2Model(CodecV2Config(**SMALL))
    module = CodecModule(net, None, init_codes_from=str(tmp_path / "v1"), decoder_only=True)
    assert torch.equal(module.net.encode(audio), v1.encode(audio))
    assert not any(p.requires_grad for p in net.encoder.parameters())
    with pytest.raises(ValueError, match="codebook_size"):
        CodecModule(CodecV2Model(CodecV2Config(**{**SMALL, "codebook_size": 32})), None,
                    init_codes_from=str(tmp_path / "v1"))  # fmt: skip


class TinyTeacher(nn.Module):
    """A random frozen 'recognizer': audio (B, T) -> (B, T // 640, 12) at 40 ms frames."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 12, 640, stride=640)

    def forward(self, audio: Tensor) -> Tensor:
        return torch.tanh(self.conv(audio[:, None])).transpose(1, 2)  # (B, F', 12)


def test_semantic_loss_trains_the_encoder_not_the_teacher(audio: Tensor) -> None:
    torch.manual_seed(0)
    net = CodecV2Model(CodecV2Config(**SMALL)).train()
    teacher = TinyTeacher()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    semantic = SemanticDistillation(teacher, latent_dim=16, sample_rate=16000)
    assert semantic.projection.out_channels == 12  # the teacher's feature size, found by probing
    out = net(audio)
    loss = semantic(out.first_codebook, audio)  # (B,)
    assert loss.shape == (2,) and bool(((loss >= 0) & (loss <= 2)).all())
    loss.mean().backward()
    assert net.encoder.layers[0].conv.parametrizations.weight.original1.grad.abs().sum() > 0
    assert semantic.projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    # The target pools two 40 ms teacher frames into each 80 ms codec frame.
    target = semantic.target(audio, 6)  # (B, 12, 6)
    features = teacher(audio[:, 0])  # (B, 12, 12)
    torch.testing.assert_close(target[..., 1], features[:, 2:4].mean(1))
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    with pytest.raises(ValueError, match="semantic_teacher"):
        CodecModule(net, None, semantic_weight=1.0)


def test_recognizer_layer_as_teacher(tmp_path) -> None:
    """The recognizer's GRU outputs (40 ms frames) through a hook, pooled to codec frames."""
    from telugu_s2s.models.asr import AsrConfig, AsrModel
    from telugu_s2s.modules.semantic import recognizer_teacher

    torch.manual_seed(0)
    save_pretrained(AsrModel(AsrConfig(conv_channels=8, hidden=6, layers=1)), tmp_path / "asr")
    teacher = recognizer_teacher(tmp_path / "asr")
    audio = 0.1 * torch.randn(2, 16000)
    features = teacher(audio)
    assert features.shape == (2, int(teacher.model.output_lengths(torch.tensor(16000))), 12)
    semantic = SemanticDistillation(teacher, latent_dim=16, sample_rate=16000)
    assert semantic.target(audio[:, None], 13).shape == (2, 12, 13)  # 1 s = 13 codec frames
    with pytest.raises(AttributeError):
        recognizer_teacher(tmp_path / "asr", layer="no_such_layer")


def test_v2_experiment_configs_compose(tmp_path) -> None:
    for name in ("codec_v2_tiny", "codec_v2_base", "codec_v2_tiny_decoder"):
        cfg = compose_train([f"experiment={name}"], tmp_path)
        assert cfg.stage_name == "codec" and cfg.model.net._target_.endswith("CodecV2Model")
        assert cfg.model.semantic_weight == 0.0  # off unless a teacher is plugged in
        net = hydra.utils.instantiate(cfg.model.net)
        assert net.bitrate <= 1500 and not transposed_convs(net.decoder)
        if name == "codec_v2_base":
            assert net.cfg == CodecV2Config.base()  # the config and the classmethod agree


def test_debug_run_of_the_tiny_experiment_exports_a_loadable_codec(tiny_dataset, tmp_path) -> None:
    from telugu_s2s.train import train

    overrides = ["experiment=codec_v2_tiny", "trainer=debug", f"paths.dataset_dir={tiny_dataset}",
                 "trainer.limit_train_batches=3", "trainer.max_time=null",
                 "data.batch_size=2", "data.limit_eval_items=4", "test=false"]  # fmt: skip
    cfg = compose_train(overrides, tmp_path)
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(metrics["val/mel_distance"]))
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()  # the resume point
    export = Path(cfg.export_dir)
    assert read_metadata(export)["stage"] == "codec"
    model = load_pretrained(export)
    assert isinstance(model, CodecV2Model)
    probe = torch.randn(1, 1, 3 * FRAME)
    assert model.decode(model.encode(probe)).shape == (1, 1, 3 * FRAME)
    # Resume from last.ckpt: the run goes on from step 3 (and the LR schedule's generator step).
    resumed = tmp_path / "resumed"
    overrides += [f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}", "trainer.max_steps=5",
                  "trainer.max_epochs=10", f"export_dir={resumed / 'export'}"]  # fmt: skip
    train(compose_train(overrides, resumed))
    assert read_metadata(resumed / "export")["global_step"] == 5


def test_semantic_loss_in_a_training_run(tiny_dataset, tmp_path) -> None:
    """The semantic term is logged in training and validation; the teacher stays frozen."""
    overrides = ["stage=codec", "model=codec_v2", "trainer=debug", f"paths.dataset_dir={tiny_dataset}",
                 "model.semantic_weight=1.0", "model.discriminator=null", "+model.net.cfg.n_filters=4",
                 "model.net.cfg.dimension=16", "model.net.cfg.codebook_size=64",
                 "data.batch_size=2", "data.crop_seconds=0.5"]  # fmt: skip
    cfg = compose_train(overrides, tmp_path)
    teacher = TinyTeacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    module: CodecModule = hydra.utils.instantiate(cfg.model, semantic_teacher=teacher)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    trainer.fit(module, datamodule=hydra.utils.instantiate(cfg.data))
    for key in ("train/semantic", "val/semantic_distance"):
        assert torch.isfinite(trainer.callback_metrics[key]), key
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())


def test_the_codes_fingerprint_ignores_the_decoder_and_guards_the_s2s_model() -> None:
    """A decoder fine-tune keeps the codes (and an S2S model trained on them fits); a retrained
    encoder or codebook does not, and the S2S model refuses such a codec."""
    from telugu_s2s.models.s2s import S2SConfig, S2SModel

    torch.manual_seed(0)
    codec = CodecV2Model(CodecV2Config(**SMALL))
    before = codec.codes_fingerprint()
    with torch.no_grad():
        next(codec.decoder.parameters()).add_(1.0)
    assert codec.codes_fingerprint() == before
    model = S2SModel(S2SConfig(codec_fingerprint=before))
    model.check_codec(codec)
    with torch.no_grad():
        next(codec.encoder.parameters()).add_(1.0)
    assert codec.codes_fingerprint() != before
    with pytest.raises(ValueError, match=f"trained on the codes of codec {before}"):
        model.check_codec(codec)
    S2SModel(S2SConfig()).check_codec(codec)  # no fingerprint (older exports): any codec
