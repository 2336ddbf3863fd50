"""Every streaming layer: chunked output == offline output, and reset(mask) is per item."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from telugu_s2s.modules.conv import StreamingConv1d, StreamingConvTranspose1d
from telugu_s2s.modules.seanet import (
    SEANetConfig,
    SEANetDecoder,
    SEANetEncoder,
    SEANetResidualUnit,
    StreamingLSTM,
)
from telugu_s2s.modules.streaming import StreamingModule, StreamingState, streaming

# Small channels, the real frame structure: 1280 samples per frame.
SMALL = SEANetConfig(dimension=8, n_filters=4, max_filters=16, lstm_layers=1)
HOP = SMALL.hop_length


def run_chunked(module: nn.Module, x: Tensor, sizes: list[int] | int) -> Tensor:
    """Feed x (B, C, T) in chunks of the given sizes (cycled) inside one stream."""
    sizes = [sizes] if isinstance(sizes, int) else sizes
    outputs, start, i = [], 0, 0
    with streaming(module, x.shape[0]):
        while start < x.shape[-1]:
            size = sizes[i % len(sizes)]
            outputs.append(module(x[..., start : start + size]))
            start, i = start + size, i + 1
    return torch.cat(outputs, dim=-1)


def make(name: str) -> tuple[nn.Module, int]:
    """A module in eval mode and the channels of its input."""
    torch.manual_seed(0)
    modules: dict[str, tuple[nn.Module, int]] = {
        "conv": (StreamingConv1d(3, 5, 7), 3),
        "conv_dilated": (StreamingConv1d(3, 5, 3, dilation=4, weight_norm=True), 3),
        "conv_strided": (StreamingConv1d(3, 5, 8, stride=4), 3),
        "conv_kernel_is_stride": (StreamingConv1d(3, 5, 5, stride=5), 3),
        "conv_transpose": (StreamingConvTranspose1d(3, 5, 8, stride=4, weight_norm=True), 3),
        "residual_unit": (SEANetResidualUnit(6, 3, dilation=2, compress=2, weight_norm=True), 6),
        "lstm": (StreamingLSTM(6, num_layers=2), 6),
        "encoder": (SEANetEncoder(SMALL), 1),
        "decoder": (SEANetDecoder(SMALL), SMALL.dimension),
    }
    module, channels = modules[name]
    return module.eval(), channels


SAMPLE_RATE_MODULES = [
    "conv",
    "conv_dilated",
    "conv_strided",
    "conv_kernel_is_stride",
    "residual_unit",
    "encoder",
]
FRAME_RATE_MODULES = ["conv_transpose", "lstm", "decoder"]


AUDIO_CHUNKS = [1, 7, 333, 1000, HOP, [5, 1280, 1, 999, 64]]


@pytest.mark.parametrize(
    ("name", "sizes"),
    # The encoder's one-sample case has its own, shorter test below.
    [(n, s) for n in SAMPLE_RATE_MODULES for s in AUDIO_CHUNKS if (n, s) != ("encoder", 1)],
)
def test_chunked_equals_offline_on_audio(name: str, sizes: list[int] | int) -> None:
    module, channels = make(name)
    x = torch.randn(2, channels, 2 * HOP + 77)  # ends mid-frame: the tail is held back
    with torch.no_grad():
        offline = module(x)
        chunked = run_chunked(module, x, sizes)
    assert chunked.shape == offline.shape
    torch.testing.assert_close(chunked, offline, atol=1e-5, rtol=0)


def test_encoder_one_sample_at_a_time() -> None:
    module, _ = make("encoder")
    x = torch.randn(1, 1, HOP + 300)
    with torch.no_grad():
        offline = module(x)  # (1, D, 1)
        chunked = run_chunked(module, x, 1)
    assert offline.shape[-1] == 1
    torch.testing.assert_close(chunked, offline, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FRAME_RATE_MODULES)
@pytest.mark.parametrize("sizes", [1, 2, 3, [1, 4, 2]])
def test_chunked_equals_offline_on_frames(name: str, sizes: list[int] | int) -> None:
    module, channels = make(name)
    x = torch.randn(2, channels, 11)
    with torch.no_grad():
        offline = module(x)
        chunked = run_chunked(module, x, sizes)
    torch.testing.assert_close(chunked, offline, atol=1e-5, rtol=0)


def test_output_lengths_follow_the_frame_convention() -> None:
    conv, _ = make("conv_strided")  # stride 4: one output per complete 4-sample frame
    convtr, _ = make("conv_transpose")  # stride 4: four samples per frame
    with torch.no_grad():
        assert conv(torch.randn(1, 3, 11)).shape == (1, 5, 2)
        assert convtr(torch.randn(1, 3, 3)).shape == (1, 5, 12)
        with conv.streaming(1):
            assert conv(torch.randn(1, 3, 3)).shape[-1] == 0  # not a whole frame yet
            assert conv(torch.randn(1, 3, 1)).shape[-1] == 1  # completes it


def test_conv_is_causal() -> None:
    conv, _ = make("conv_strided")
    x = torch.randn(1, 3, 40)
    future = x.clone()
    future[..., 20:] += 1.0  # output frames 0..4 cover samples < 20
    with torch.no_grad():
        torch.testing.assert_close(conv(x)[..., :5], conv(future)[..., :5], atol=0, rtol=0)
        assert not torch.allclose(conv(x)[..., 5], conv(future)[..., 5])


@pytest.mark.parametrize("name", ["conv_strided", "conv_transpose", "lstm", "encoder", "decoder"])
def test_reset_restarts_only_masked_items(name: str) -> None:
    module, channels = make(name)
    step = HOP if name == "encoder" else (4 if name == "conv_strided" else 1)
    first = torch.randn(2, channels, 3 * step)
    second = torch.randn(2, channels, 2 * step)
    with torch.no_grad():
        fresh = module(second)  # offline = a stream that has seen nothing before
        continued = module(torch.cat([first, second], dim=-1))
        with module.streaming(2):
            module(first)
            module.reset_streaming(torch.tensor([True, False]))
            out = module(second)
    n_out = fresh.shape[-1]
    torch.testing.assert_close(out[0], fresh[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], continued[1, :, -n_out:], atol=1e-5, rtol=0)
    assert not torch.allclose(out[1], fresh[1], atol=1e-3)  # item 1 really kept its past


def test_streaming_context_lifecycle() -> None:
    module, _ = make("encoder")
    convs = [m for m in module.modules() if isinstance(m, StreamingModule)]
    with module.streaming(3):
        assert all(m.is_streaming and m.state.batch_size == 3 for m in convs)
        with pytest.raises(RuntimeError, match="already streaming"):
            with module.streaming(3):
                pass
        with pytest.raises(ValueError, match="mask shape"):
            module.reset_streaming(torch.tensor([True]))
    assert not any(m.is_streaming for m in convs)
    with pytest.raises(RuntimeError, match="not streaming"):
        _ = convs[1].state


def test_default_state_reset_zeroes_batch_items() -> None:
    from dataclasses import dataclass

    @dataclass
    class Toy(StreamingState):
        cache: Tensor
        shared: Tensor  # not batch-first: left alone

    state = Toy(3, cache=torch.ones(3, 2), shared=torch.ones(5))
    state.reset(torch.tensor([False, True, False]))
    assert state.cache.tolist() == [[1, 1], [0, 0], [1, 1]]
    assert state.shared.tolist() == [1] * 5
