"""The causal transformer: chunked KV-cache streaming == offline, per-item reset, backends."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from telugu_s2s.modules.streaming import streaming
from telugu_s2s.modules.transformer import (
    StreamingTransformer,
    TransformerConfig,
    choose_attention_backend,
    flash_attn_available,
)

# A window shorter than the sequences, so the ring buffer wraps and evicts.
SMALL = TransformerConfig(d_model=32, num_layers=2, num_heads=4, context=6)


def make(cfg: TransformerConfig = SMALL) -> StreamingTransformer:
    torch.manual_seed(0)
    return StreamingTransformer(cfg).eval()


def run_chunked(model: StreamingTransformer, x: Tensor, sizes: list[int]) -> Tensor:
    """Feed x (B, T, D) in chunks of the given sizes (cycled) inside one stream."""
    outputs, start, i = [], 0, 0
    with streaming(model, x.shape[0]):
        while start < x.shape[1]:
            size = sizes[i % len(sizes)]
            outputs.append(model(x[:, start : start + size]))
            start, i = start + size, i + 1
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("sizes", [[1], [2], [3], [5, 1, 7, 2], [17]])
@pytest.mark.parametrize("context", [6, 64])
def test_chunked_equals_offline(sizes: list[int], context: int) -> None:
    model = make(TransformerConfig(d_model=32, num_layers=2, num_heads=4, context=context))
    x = torch.randn(3, 17, 32)
    with torch.no_grad():
        offline = model(x)
        chunked = run_chunked(model, x, sizes)
    torch.testing.assert_close(chunked, offline, atol=1e-5, rtol=0)


def test_window_limits_what_a_position_sees() -> None:
    model = make(TransformerConfig(d_model=32, num_layers=1, num_heads=4, context=6))
    x = torch.randn(1, 12, 32)
    changed = x.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        out, out_changed = model(x), model(changed)
    torch.testing.assert_close(out[:, :3], out_changed[:, :3], atol=0, rtol=0)  # causal
    assert not torch.allclose(out[:, 8], out_changed[:, 8])  # 8 - 3 < 6: inside the window
    torch.testing.assert_close(out[:, 9:], out_changed[:, 9:], atol=0, rtol=0)  # outside


def test_sessions_that_start_at_different_times_share_one_state() -> None:
    """Item 1 is reset at step 5 (a new session in the slot): it must match a fresh stream
    on its own input, never attending to the previous occupant; item 0 is untouched."""
    model = make()
    first = torch.randn(2, 5, 32)
    second = torch.randn(2, 9, 32)
    with torch.no_grad():
        continued = model(torch.cat([first, second], dim=1))  # (2, 14, D)
        fresh = model(second[1:])  # (1, 9, D)
        outputs = []
        with model.streaming(2):
            for t in range(5):
                model(first[:, t : t + 1])
            model.reset_streaming(torch.tensor([False, True]))
            outputs.append(model(second[:, :2]))  # a chunk of 2, then single frames
            for t in range(2, 9):
                outputs.append(model(second[:, t : t + 1]))
        streamed = torch.cat(outputs, dim=1)  # (2, 9, D)
    torch.testing.assert_close(streamed[1], fresh[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed[0], continued[0, 5:], atol=1e-5, rtol=0)


def test_reset_hides_the_previous_occupant_even_inside_the_window() -> None:
    model = make(TransformerConfig(d_model=32, num_layers=1, num_heads=4, context=64))
    a, b, probe = torch.randn(1, 4, 32), torch.randn(1, 4, 32), torch.randn(1, 1, 32)
    with torch.no_grad(), model.streaming(1):
        model(a)
        model.reset_streaming()
        after_a = model(probe)
        model.reset_streaming()
        model(b)
        model.reset_streaming()
        after_b = model(probe)
    torch.testing.assert_close(after_a, after_b, atol=1e-6, rtol=0)


def test_auto_backend_is_sdpa_on_cpu() -> None:
    q = torch.randn(1, 2, 3, 8)
    assert choose_attention_backend("auto", q, custom_mask=False) == "sdpa"
    assert choose_attention_backend("sdpa", q, custom_mask=False) == "sdpa"
    with pytest.raises(RuntimeError, match="flash"):
        choose_attention_backend("flash", q, custom_mask=False)
    with pytest.raises(ValueError, match="attention_backend"):
        choose_attention_backend("xformers", q, custom_mask=False)


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ),
    ],
)
def test_streaming_under_bf16_autocast(device: str) -> None:
    """The float32 cache takes bf16 keys under autocast; chunked stays close to offline."""
    model = make(TransformerConfig(d_model=64, num_layers=2, num_heads=4, context=8)).to(device)
    x = torch.randn(2, 13, 64, device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        offline = model(x).float()
        chunked = run_chunked(model, x, [1, 3]).float()
    torch.testing.assert_close(chunked, offline, atol=3e-2, rtol=3e-2)


@pytest.mark.skipif(
    not (torch.cuda.is_available() and flash_attn_available()),
    reason="flash-attn runs only on CUDA with the flash_attn package installed",
)
@pytest.mark.parametrize("context", [8, 256])  # sliding window and plain causal
def test_flash_matches_sdpa(context: int) -> None:
    cfg = dict(d_model=128, num_layers=2, num_heads=4, context=context)
    flash = make(TransformerConfig(**cfg, attention_backend="flash")).cuda().bfloat16()
    sdpa = make(TransformerConfig(**cfg, attention_backend="sdpa")).cuda().bfloat16()
    sdpa.load_state_dict(flash.state_dict())
    x = torch.randn(2, 40, 128, device="cuda", dtype=torch.bfloat16)
    q = torch.randn(1, 4, 3, 32, device="cuda", dtype=torch.bfloat16)
    assert choose_attention_backend("auto", q, custom_mask=False) == "flash"
    assert choose_attention_backend("auto", q, custom_mask=True) == "sdpa"
    with torch.no_grad():
        torch.testing.assert_close(flash(x).float(), sdpa(x).float(), atol=5e-2, rtol=5e-2)
