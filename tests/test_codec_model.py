"""The codec model: streaming == offline, one frame of latency, RVQ behaviour, checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.models.codec import AudioTokenizer, CodecConfig, CodecModel
from telugu_s2s.modules.quantization import ResidualVectorQuantizer, code_histogram, codebook_usage

FRAME = 1280


@pytest.fixture(scope="module")
def codec() -> CodecModel:
    torch.manual_seed(0)
    return CodecModel(CodecConfig()).eval()  # the default (tiny) codec, untrained


@pytest.fixture(scope="module")
def audio() -> Tensor:
    torch.manual_seed(1)
    return 0.3 * torch.randn(2, 1, 5 * FRAME)  # (B, 1, T): 5 whole frames


def stream_encode(codec: CodecModel, audio: Tensor, sizes: list[int]) -> Tensor:
    codes, start, i = [], 0, 0
    while start < audio.shape[-1]:
        codes.append(codec.encode_step(audio[..., start : start + sizes[i % len(sizes)]]))
        start, i = start + sizes[i % len(sizes)], i + 1
    return torch.cat(codes, dim=-1)  # (B, K, F)


def test_tokenizer_interface(codec: CodecModel, audio: Tensor) -> None:
    assert isinstance(codec, AudioTokenizer)
    assert (codec.sample_rate, codec.frame_size, codec.frame_rate) == (16000, FRAME, 12.5)
    assert codec.num_codebooks == 8 and codec.cardinality == 1024
    codes = codec.encode(audio)
    assert codes.shape == (2, 8, 5) and codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < codec.cardinality
    assert codec.decode(codes).shape == (2, 1, 5 * FRAME)
    assert codec.encode(audio[..., :-100]).shape[-1] == 5  # a partial last frame is zero-padded
    assert codec.encode(audio, num_codebooks=3).shape == (2, 3, 5)
    assert codec.decode(codes[:, :3]).shape == (2, 1, 5 * FRAME)  # fewer codebooks: lower bitrate


@pytest.mark.parametrize(
    "sizes", [[FRAME], [7, 333, 1000], [1, FRAME - 1, FRAME + 1, 2 * FRAME + 5]]
)
def test_chunked_encode_gives_offline_codes(
    codec: CodecModel, audio: Tensor, sizes: list[int]
) -> None:
    offline = codec.encode(audio)
    with codec.streaming(2):
        chunked = stream_encode(codec, audio, sizes)
    assert torch.equal(chunked, offline)


@pytest.mark.parametrize("frames_per_step", [[1], [2, 3], [3, 1, 1]])
def test_chunked_decode_gives_offline_audio(
    codec: CodecModel, audio: Tensor, frames_per_step: list[int]
) -> None:
    codes = codec.encode(audio)
    offline = codec.decode(codes)
    outputs, start, i = [], 0, 0
    with codec.streaming(2):
        while start < codes.shape[-1]:
            n = frames_per_step[i % len(frames_per_step)]
            outputs.append(codec.decode_step(codes[..., start : start + n]))
            start, i = start + n, i + 1
    torch.testing.assert_close(torch.cat(outputs, dim=-1), offline, atol=1e-4, rtol=0)


def test_streaming_round_trip_one_frame_at_a_time(codec: CodecModel, audio: Tensor) -> None:
    offline = codec.decode(codec.encode(audio))
    with codec.streaming(2):
        out = [
            codec.decode_step(codec.encode_step(audio[..., f * FRAME : (f + 1) * FRAME]))
            for f in range(5)
        ]
    assert all(chunk.shape == (2, 1, FRAME) for chunk in out)  # every frame in -> one frame out
    torch.testing.assert_close(torch.cat(out, dim=-1), offline, atol=1e-4, rtol=0)


def test_latency_is_exactly_one_frame(codec: CodecModel, audio: Tensor) -> None:
    with codec.streaming(2):
        assert codec.encode_step(audio[..., : FRAME - 1]).shape == (2, 8, 0)  # frame incomplete
        codes = codec.encode_step(audio[..., FRAME - 1 : FRAME])  # its last sample
        assert codes.shape == (2, 8, 1)
        assert codec.decode_step(codes).shape == (2, 1, FRAME)  # decoded at once, whole
        assert codec.decode_step(codes[..., :0]).shape == (2, 1, 0)


def test_output_frame_depends_on_input_up_to_the_end_of_its_frame(
    codec: CodecModel, audio: Tensor
) -> None:
    boundary = 3 * FRAME  # frames 0..2 end here
    future = audio.clone()
    future[..., boundary:] = torch.randn_like(future[..., boundary:])
    with torch.no_grad():
        latent, latent_future = codec.encoder(audio), codec.encoder(future)  # (B, D, 5)
        assert torch.equal(latent[..., :3], latent_future[..., :3])
        assert not torch.allclose(latent[..., 3], latent_future[..., 3])
        assert torch.equal(codec.encode(audio)[..., :3], codec.encode(future)[..., :3])
        decoded, decoded_future = (
            codec.decode(codec.encode(audio)),
            codec.decode(codec.encode(future)),
        )
        assert torch.equal(decoded[..., :boundary], decoded_future[..., :boundary])
        # The last sample of a frame already moves that frame's latent: no slack either way.
        last = audio.clone()
        last[..., boundary - 1] += 1.0
        assert not torch.allclose(codec.encoder(last)[..., 2], latent[..., 2])
        # Decoder: changing code frame 3 changes output from sample 3 * FRAME on, not before.
        codes = codec.encode(audio)
        changed = codes.clone()
        changed[:, :, 3] = (changed[:, :, 3] + 1) % codec.cardinality
        out, out_changed = codec.decode(codes), codec.decode(changed)
        assert torch.equal(out[..., :boundary], out_changed[..., :boundary])
        assert not torch.allclose(
            out[..., boundary : boundary + FRAME], out_changed[..., boundary : boundary + FRAME]
        )


def test_reset_restarts_one_session(codec: CodecModel, audio: Tensor) -> None:
    second = audio[..., 2 * FRAME :]
    fresh = codec.encode(second)
    with codec.streaming(2):
        stream_encode(codec, audio[..., : 2 * FRAME], [FRAME])
        codec.reset_streaming(torch.tensor([True, False]))
        after = stream_encode(codec, second, [FRAME])
    assert torch.equal(after[0], fresh[0])
    assert torch.equal(after[1], codec.encode(audio)[1, :, 2:])


def test_steps_outside_streaming_raise(codec: CodecModel, audio: Tensor) -> None:
    with pytest.raises(RuntimeError, match="streaming"):
        codec.encode_step(audio)


def test_quantizer_dropout_varies_codebooks_in_training() -> None:
    torch.manual_seed(0)
    model = CodecModel(CodecConfig(quantizer_dropout=1.0)).train()
    x = 0.1 * torch.randn(2, 1, FRAME)
    used = set()
    for _ in range(12):
        out = model(x)
        assert out.codes.shape[1] == out.num_codebooks == out.perplexity.shape[0]
        assert out.audio.shape == x.shape
        used.add(out.num_codebooks)
    assert len(used) > 2 and used <= set(range(1, 9))
    assert model.eval()(x).num_codebooks == 8  # evaluation uses every codebook
    model.quantizer.quantizer_dropout = 0.0
    assert model.train()(x).num_codebooks == 8


def test_training_pass_backpropagates_to_encoder() -> None:
    torch.manual_seed(0)
    model = CodecModel(CodecConfig()).train()
    out = model(0.1 * torch.randn(2, 1, 2 * FRAME + 10))  # a ragged length is padded then trimmed
    assert out.audio.shape == (2, 1, 2 * FRAME + 10)
    (out.audio.pow(2).mean() + out.commitment_loss).backward()
    first_conv = model.encoder.layers[0].conv
    grads = [p.grad for p in first_conv.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)  # straight-through works


def _toy_usage_after_shift(dead_code_patience: float) -> tuple[float, float]:
    """Codes fitted to 32 clusters, then the data moves far away: usage before/after refitting."""
    torch.manual_seed(0)
    centers = 4 * torch.randn(32, 8)

    def batch(offset: float, n: int = 256) -> Tensor:
        points = centers[torch.randint(0, 32, (n,))] + offset + 0.1 * torch.randn(n, 8)  # (n, 8)
        return points.t()[None]  # (1, 8, n)

    rvq = ResidualVectorQuantizer(
        8,
        num_codebooks=1,
        codebook_size=32,
        decay=0.9,
        dead_code_patience=dead_code_patience,
        quantizer_dropout=0.0,
    )

    def usage() -> float:
        rvq.eval()
        return codebook_usage(code_histogram(rvq.encode(batch(30.0, 2048)), 32)).item()

    rvq.train()
    for _ in range(20):
        rvq(batch(0.0))
    before = usage()
    rvq.train()
    for _ in range(100):
        rvq(batch(30.0))
    return before, usage()


def test_ema_with_dead_code_restarts_raises_codebook_usage() -> None:
    before, with_restarts = _toy_usage_after_shift(dead_code_patience=8.0)
    _, without_restarts = _toy_usage_after_shift(dead_code_patience=0.0)
    assert before < 0.25  # the moved data lands on a few stale codes
    assert with_restarts >= 0.9  # dead codes restarted on the new data
    assert without_restarts < 0.25  # EMA alone only moves the few codes that win


def test_codebook_cache_follows_weight_changes(codec: CodecModel, audio: Tensor) -> None:
    torch.manual_seed(5)
    other = CodecModel(CodecConfig()).eval()
    target = other.encode(audio)
    copy = CodecModel(CodecConfig()).eval()
    copy.load_state_dict(codec.state_dict())
    assert torch.equal(copy.encode(audio), codec.encode(audio))  # the lookup tables are now cached
    copy.load_state_dict(other.state_dict())
    assert torch.equal(copy.encode(audio), target)


def test_save_load_round_trip(tmp_path, audio: Tensor) -> None:
    torch.manual_seed(0)
    model = CodecModel(CodecConfig(n_filters=4, dimension=16, codebook_size=64))
    model.train()(audio)  # initialise the codebooks and move the EMA buffers
    model.eval()
    save_pretrained(model, tmp_path / "codec")
    loaded = load_pretrained(tmp_path / "codec")
    assert isinstance(loaded, CodecModel) and loaded.cfg == model.cfg
    codes = model.encode(audio)
    assert torch.equal(loaded.encode(audio), codes)
    assert torch.equal(loaded.decode(codes), model.decode(codes))


def test_bitrate_within_budget() -> None:
    assert CodecConfig().bitrate == 12.5 * 8 * 10 == 1000
    assert CodecConfig.base().bitrate <= 1500
    assert CodecModel(CodecConfig(num_codebooks=4)).bitrate == 500
