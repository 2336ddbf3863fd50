"""Causal convolutions that stream exactly: chunked output == offline output.

Causality convention (no look-ahead): with stride `s`, output frame `t` covers the input
samples `[t*s, (t+1)*s)` and depends on nothing after `(t+1)*s - 1`. A conv therefore
emits one output per complete input frame (`T // s` offline), and a transposed conv turns
each input frame into exactly `s` output samples. Neither adds latency beyond its frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from telugu_s2s.modules.streaming import (
    StreamingModule,
    StreamingState,
    module_device,
    module_dtype,
    shared_field,
)


@dataclass
class ConvState(StreamingState):
    buffer: Tensor  # (B, C_in, L): left context plus the input not yet consumed
    weight: Tensor | None = shared_field()  # the (weight-normed) kernel, computed once per stream


class StreamingConv1d(StreamingModule[ConvState]):
    """Causal `Conv1d`: left padding only, so output `t` sees inputs up to `(t+1)*stride - 1`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        weight_norm: bool = False,
    ) -> None:
        super().__init__()
        self.span = (kernel_size - 1) * dilation + 1  # input samples one output looks at
        if self.span < stride:
            raise ValueError(f"kernel span {self.span} < stride {stride}: inputs would be skipped")
        self.stride = stride
        self.in_channels, self.out_channels = in_channels, out_channels
        self.left_pad = self.span - stride  # zeros before the first frame (offline and fresh state)
        conv = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.conv = apply_weight_norm(conv) if weight_norm else conv

    def init_state(self, batch_size: int) -> ConvState:
        zeros = torch.zeros(
            batch_size,
            self.in_channels,
            self.left_pad,
            device=module_device(self),
            dtype=module_dtype(self),
        )
        return ConvState(batch_size, buffer=zeros, weight=self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C_in, T) -> (B, C_out, T // stride) offline, or what is ready when streaming."""
        state = self._streaming_state  # per-frame steps are overhead-bound: no property calls
        if state is None:
            x = F.pad(x, (self.left_pad, 0))  # (B, C_in, left_pad + T)
        else:
            x = torch.cat([state.buffer, x], dim=-1)  # (B, C_in, L + T)
        length = x.shape[-1]
        num_out = (length - self.span) // self.stride + 1 if length >= self.span else 0
        if state is not None:
            state.buffer = x[..., num_out * self.stride :]  # the next output starts here
        if num_out == 0:
            return x.new_zeros(x.shape[0], self.out_channels, 0)
        x = x[..., : (num_out - 1) * self.stride + self.span]
        weight = self.conv.weight if state is None else state.weight
        return self.conv._conv_forward(x, weight, self.conv.bias)  # (B, C_out, num_out)


@dataclass
class ConvTransposeState(StreamingState):
    tail: Tensor  # (B, C_out, kernel - stride): past frames' overlap onto future outputs, no bias
    weight: Tensor | None = shared_field()  # the (weight-normed) kernel, computed once per stream


class StreamingConvTranspose1d(StreamingModule[ConvTransposeState]):
    """Causal `ConvTranspose1d`: frame `t` yields outputs `[t*stride, (t+1)*stride)` now.

    Offline, the right overlap (`kernel - stride` samples) is trimmed; streaming, it is
    kept in the state and added to the next chunk's output. The bias is added after the
    overlap-add so that it counts once per sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        weight_norm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError(f"kernel {kernel_size} < stride {stride}: outputs would be left empty")
        self.stride, self.out_channels = stride, out_channels
        self.overlap = kernel_size - stride
        convtr = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, bias=False)
        self.convtr = apply_weight_norm(convtr) if weight_norm else convtr
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if self.bias is not None:  # the same init as nn.ConvTranspose1d's bias
            bound = 1 / (out_channels * kernel_size) ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def init_state(self, batch_size: int) -> ConvTransposeState:
        zeros = torch.zeros(
            batch_size,
            self.out_channels,
            self.overlap,
            device=module_device(self),
            dtype=module_dtype(self),
        )
        return ConvTransposeState(batch_size, tail=zeros, weight=self.convtr.weight)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C_in, T) -> (B, C_out, T * stride), offline or streaming."""
        batch, _, frames = x.shape
        if frames == 0:
            return x.new_zeros(batch, self.out_channels, 0)
        state = self._streaming_state
        weight = self.convtr.weight if state is None else state.weight
        # (B, C_out, (T - 1) * stride + kernel)
        y = F.conv_transpose1d(x, weight, stride=self.stride)
        num_out = frames * self.stride
        if state is not None:
            head = y[..., : self.overlap] + state.tail  # (B, C_out, overlap)
            y = torch.cat([head, y[..., self.overlap :]], dim=-1)
            state.tail = y[..., num_out:]  # (B, C_out, overlap)
        y = y[..., :num_out]  # (B, C_out, T * stride)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y
