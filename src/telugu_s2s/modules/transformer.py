"""A causal pre-norm transformer (RoPE, SwiGLU) that streams exactly through a KV cache.

Offline, `StreamingTransformer(x)` attends causally over the whole sequence, each position
seeing at most the last `context` positions (itself included). Inside
`streaming(batch_size)`, every call consumes the next chunk of any length and the keys and
values of the last `context` positions live in a ring buffer, so chunked output equals the
offline output.

Every batch item has its own position counter, so one batched state serves sessions that
started at different times: `reset_streaming(mask)` sends the masked items back to position
0 and hides their old cache entries, which then belong to nobody. Keys are cached after
RoPE, at the item's own positions. The transformer owns the positions and the ring's
bookkeeping and computes the masks and RoPE rotations once per call for all its layers;
while all items share one position (after a full reset, as the depth transformer does
every frame) a one-frame step needs no mask at all.

Attention backend (`attention_backend`): "sdpa" is `F.scaled_dot_product_attention`;
"flash" is flash-attn's `flash_attn_func`, which needs CUDA tensors in fp16/bf16 and a plain
causal (or sliding-window) mask, so it serves the offline pass (training) only; the cached
step builds a per-item mask and always uses SDPA. "auto" takes flash when it can and SDPA
otherwise.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from telugu_s2s.modules.streaming import (
    StreamingModule,
    StreamingState,
    module_device,
    module_dtype,
)

AttentionBackend = Literal["auto", "sdpa", "flash"]
_FLASH_DTYPES = (torch.float16, torch.bfloat16)


@dataclass
class TransformerConfig:
    d_model: int = 256
    num_layers: int = 6
    num_heads: int = 4
    mlp_hidden: int | None = None  # None: SwiGLU's 8/3 * d_model, rounded up to a multiple of 64
    context: int = 250  # attention window in positions (itself included) = KV cache length
    rope_base: float = 10000.0
    dropout: float = 0.0
    norm_eps: float = 1e-5
    attention_backend: str = "auto"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def hidden_dim(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return -(-(8 * self.d_model // 3) // 64) * 64


def flash_attn_available() -> bool:
    """Whether the `flash_attn` package is importable (it only runs on CUDA)."""
    return importlib.util.find_spec("flash_attn") is not None


def choose_attention_backend(
    requested: str, q: Tensor, custom_mask: bool
) -> Literal["sdpa", "flash"]:
    """The backend one attention call uses. "flash" raises when it cannot run this call."""
    if requested not in ("auto", "sdpa", "flash"):
        raise ValueError(f"attention_backend must be auto, sdpa or flash, not {requested!r}")
    if requested == "sdpa":
        return "sdpa"
    problem = None
    if not flash_attn_available():
        problem = "flash_attn is not installed"
    elif not q.is_cuda:
        problem = "flash-attn needs CUDA tensors"
    elif q.dtype not in _FLASH_DTYPES:
        problem = f"flash-attn needs fp16 or bf16, not {q.dtype}"
    elif custom_mask:
        problem = "flash-attn takes no per-item mask"
    if problem is None:
        return "flash"
    if requested == "flash":
        raise RuntimeError(f"attention_backend='flash' cannot run here: {problem}")
    return "sdpa"


class RotaryEmbedding(nn.Module):
    """RoPE at explicit, possibly per-item, positions; channel pairs (2i, 2i + 1) rotate."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (Dh/2,)

    def forward(self, positions: Tensor) -> Tensor:
        """positions (B or 1, T) -> unit rotations (B or 1, 1, T, Dh/2), complex64."""
        angles = positions[:, None, :, None].float() * self.inv_freq  # (B, 1, T, Dh/2)
        return torch.polar(torch.ones_like(angles), angles)


def apply_rope(x: Tensor, rotation: Tensor) -> Tensor:
    """x (..., B, H, T, Dh) rotated pairwise by `rotation` (B, 1, T, Dh/2): one complex product."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (..., B, H, T, Dh/2)
    return torch.view_as_real(pairs * rotation).flatten(-2).to(x.dtype)


@dataclass
class AttentionInputs:
    """What every layer of one transformer call shares (computed once per call)."""

    rotation: Tensor  # (B or 1, 1, T, Dh/2) RoPE
    mask: Tensor | None  # (B, 1, T, keys) when streaming, (T, T) offline with a window, else None
    streaming: bool = False
    write_index: Tensor | int | None = None  # ring slots (n,) of the newest entries; int: T = 1
    write_first: bool = False  # one-frame step: write, then attend over the ring alone
    prefix: int | None = None  # lockstep step: attend to ring slots [0, prefix) without a mask


@dataclass
class TransformerState(StreamingState):
    positions: Tensor  # (B, C) the item's own position of each ring entry; -1 = empty
    offset: Tensor  # (B,) the item's next position
    write: int = 0  # ring index of the next entry, shared by all items (they step together)
    lockstep: int | None = 0  # the common position while all items share one (else None)

    def reset(self, mask: Tensor) -> None:
        mask = mask.to(self.positions.device)
        self.positions = self.positions.masked_fill(mask[:, None], -1)  # hides the old entries
        self.offset = self.offset.masked_fill(mask, 0)
        if bool(mask.all()):  # all restart together (the depth transformer, every frame)
            self.write, self.lockstep = 0, 0
        else:
            self.lockstep = None


@dataclass
class KVCacheState(StreamingState):
    keys: Tensor  # (B, H, C, Dh) after RoPE; ring buffer over the last C steps
    values: Tensor  # (B, H, C, Dh)

    def reset(self, mask: Tensor) -> None:
        """Nothing to do: the transformer's positions hide a reset item's entries."""


class CausalSelfAttention(StreamingModule[KVCacheState]):
    """Attention of one layer; positions, masks and RoPE angles come from the transformer."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.num_heads:
            raise ValueError(f"d_model {cfg.d_model} is not divisible by num_heads {cfg.num_heads}")
        if cfg.attention_backend == "flash" and not flash_attn_available():
            raise RuntimeError("attention_backend='flash' but flash_attn is not installed")
        self.num_heads, self.head_dim, self.context = cfg.num_heads, cfg.head_dim, cfg.context
        self.backend, self.dropout = cfg.attention_backend, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def init_state(self, batch_size: int) -> KVCacheState:
        device, dtype = module_device(self), module_dtype(self)
        shape = (batch_size, self.num_heads, self.context, self.head_dim)
        return KVCacheState(
            batch_size,
            keys=torch.zeros(shape, device=device, dtype=dtype),
            values=torch.zeros(shape, device=device, dtype=dtype),
        )

    def forward(self, x: Tensor, inputs: AttentionInputs) -> Tensor:
        """x (B, T, D) -> (B, T, D): the whole sequence offline, the next chunk when streaming."""
        qkv = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.num_heads)
        qk = apply_rope(qkv[:2], inputs.rotation)  # (2, B, H, T, Dh)
        q, k, v = qk[0], qk[1], qkv[2]
        if inputs.streaming:
            out = self._attend_cached(self.state, q, k, v, inputs)
        else:
            out = self._attend_offline(q, k, v, inputs.mask)
        return self.out(rearrange(out, "b h t d -> b t (h d)"))  # (B, T, D)

    def _attend_offline(self, q: Tensor, k: Tensor, v: Tensor, band: Tensor | None) -> Tensor:
        """q, k, v (B, H, T, Dh) -> (B, H, T, Dh); `band` (T, T) when T exceeds the window."""
        dropout = self.dropout if self.training else 0.0
        if choose_attention_backend(self.backend, q, custom_mask=False) == "flash":
            from flash_attn import flash_attn_func

            window = (self.context - 1, 0) if band is not None else (-1, -1)
            q, k, v = (rearrange(t, "b h t d -> b t h d") for t in (q, k, v))
            out = flash_attn_func(q, k, v, dropout_p=dropout, causal=True, window_size=window)
            return rearrange(out, "b t h d -> b h t d")
        if band is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=band, dropout_p=dropout)

    def _attend_cached(
        self, state: KVCacheState, q: Tensor, k: Tensor, v: Tensor, inputs: AttentionInputs
    ) -> Tensor:
        """Attend the chunk's queries to the cache and the chunk itself; cache the chunk.

        The cache keeps the module's dtype; under autocast, k and v are cast on the way in
        and the cache is cast to the queries' dtype on the way out.
        """
        k, v = k.to(state.keys.dtype), v.to(state.values.dtype)
        if inputs.write_first:  # the entry overwritten is `context` steps old: outside the window
            state.keys[:, :, inputs.write_index] = k[:, :, 0]
            state.values[:, :, inputs.write_index] = v[:, :, 0]
            keys, values = state.keys, state.values  # (B, H, C, Dh)
            if inputs.prefix is not None:  # items in lockstep, ring not yet wrapped: all visible
                keys, values = keys[:, :, : inputs.prefix], values[:, :, : inputs.prefix]
        else:
            keys = torch.cat([state.keys, k], dim=2)  # (B, H, C + T, Dh)
            values = torch.cat([state.values, v], dim=2)
        keys, values = keys.to(q.dtype), values.to(q.dtype)
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=inputs.mask)  # (B,H,T,Dh)
        if not inputs.write_first:  # in place: the cache is large
            n = inputs.write_index.shape[0]
            state.keys[:, :, inputs.write_index] = k[:, :, -n:]
            state.values[:, :, inputs.write_index] = v[:, :, -n:]
        return out


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, H) each
        return self.down(F.silu(gate) * up)  # (B, T, D)


class TransformerLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.mlp_norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.hidden_dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, inputs: AttentionInputs) -> Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), inputs))  # (B, T, D)
        return x + self.dropout(self.mlp(self.mlp_norm(x)))


class StreamingTransformer(StreamingModule[TransformerState]):
    """A stack of causal layers and a final norm: (B, T, D) -> (B, T, D).

    It owns the positions (per item) and the ring's bookkeeping; its layers' states hold
    only keys and values. Masks and RoPE angles are computed once per call for all layers.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_base)
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)

    def init_state(self, batch_size: int) -> TransformerState:
        device = module_device(self)
        return TransformerState(
            batch_size,
            positions=torch.full(
                (batch_size, self.cfg.context), -1, device=device, dtype=torch.long
            ),
            offset=torch.zeros(batch_size, device=device, dtype=torch.long),
        )

    def forward(self, x: Tensor) -> Tensor:
        state, length = self._streaming_state, x.shape[1]
        steps = torch.arange(length, device=x.device)  # (T,)
        if state is None:
            inputs = AttentionInputs(self.rope(steps[None]), mask=self._band(steps))
        else:
            inputs = self._streaming_inputs(state, steps)
        for layer in self.layers:
            x = layer(x, inputs)
        if state is not None:
            if not inputs.write_first:
                n = inputs.write_index.shape[0]
                state.positions[:, inputs.write_index] = state.offset[:, None] + steps[-n:]
            state.offset = state.offset + length
            state.write = (state.write + length) % self.cfg.context
            if state.lockstep is not None:
                state.lockstep += length
        return self.norm(x)

    def _band(self, steps: Tensor) -> Tensor | None:
        """Offline mask (T, T) when the sequence is longer than the window; else None (causal)."""
        if steps.shape[0] <= self.cfg.context:
            return None
        distance = steps[:, None] - steps[None, :]  # (T, T) query - key
        return (distance >= 0) & (distance < self.cfg.context)

    def _streaming_inputs(self, state: TransformerState, steps: Tensor) -> AttentionInputs:
        capacity, length = self.cfg.context, steps.shape[0]
        positions = state.offset[:, None] + steps  # (B, T)
        if length > 1:  # attend over cache + chunk, then store the chunk's newest entries
            n = min(length, capacity)
            write_index = (
                state.write + length - n + torch.arange(n, device=steps.device)
            ) % capacity
            key_positions = torch.cat([state.positions, positions], dim=1)  # (B, C + T)
        else:  # one frame: store it first, then attend over the ring alone
            write_index = state.write
            state.positions[:, write_index] = positions[:, 0]
            key_positions = state.positions  # (B, C)
            if state.lockstep is not None and state.lockstep < capacity:
                # Slot == position and every item sees slots [0, position]: no mask needed.
                # The per-frame depth step always takes this path.
                return AttentionInputs(
                    self.rope(positions[:1]), mask=None, streaming=True,
                    write_index=write_index, write_first=True, prefix=state.lockstep + 1,
                )  # fmt: skip
        distance = positions[:, :, None] - key_positions[:, None, :]  # (B, T, keys)
        visible = (key_positions[:, None, :] >= 0) & (distance >= 0) & (distance < capacity)
        return AttentionInputs(
            self.rope(positions), mask=visible[:, None], streaming=True,
            write_index=write_index, write_first=length == 1,
        )  # fmt: skip
