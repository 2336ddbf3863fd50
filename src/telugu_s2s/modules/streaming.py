"""Streaming modules: step a model chunk by chunk and get exactly its offline output.

The pattern follows moshi. Every stateful layer is a `StreamingModule[State]`: its typed
dataclass state lives on the module while a `streaming(batch_size)` context is open. Inside
the context `forward` consumes one chunk and returns whatever output is ready; outside it,
`forward` runs offline on the whole sequence. A server keeps one long-lived context for a
batch of sessions and calls `reset_streaming(mask)` when sessions join or leave: only the
masked batch items go back to the fresh state.

    with model.streaming(batch_size=2):
        for chunk in chunks:          # (B, C, any length)
            out = model(chunk)        # (B, C', what is ready)
        model.reset_streaming(torch.tensor([True, False]))  # item 0 starts a new stream
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Generic, TypeVar

import torch
from torch import Tensor, nn


@dataclasses.dataclass
class StreamingState:
    """Base of every streaming state. Tensor fields are batch-first: (B, ...)."""

    batch_size: int

    def reset(self, mask: Tensor) -> None:
        """Return the items where `mask` (B,) is True to the fresh state.

        The default zeroes them in every batch-first tensor field, which is the fresh state
        of convolution buffers and recurrent states; override it when fresh is not zero.
        Strided convolutions fed part of a frame hold a longer buffer than a fresh one, so
        a reset is exact at frame boundaries, which is where a server resets.
        """
        for field in dataclasses.fields(self):
            if field.metadata.get("shared"):  # per-stream constants, not per-item state
                continue
            value = getattr(self, field.name)
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.batch_size:
                item_mask = mask.to(value.device).view(-1, *([1] * (value.dim() - 1)))
                # Out of place: states built under inference_mode refuse in-place updates.
                setattr(self, field.name, value.masked_fill(item_mask, 0))


def shared_field(default=None):
    """A state field that belongs to the whole stream (not batch-first): `reset` skips it."""
    return dataclasses.field(default=default, metadata={"shared": True})


StateT = TypeVar("StateT", bound=StreamingState)


class StreamingModule(nn.Module, abc.ABC, Generic[StateT]):
    """A module that can run offline or step through a stream inside `streaming(...)`."""

    def __init__(self) -> None:
        super().__init__()
        self._streaming_state: StateT | None = None

    @abc.abstractmethod
    def init_state(self, batch_size: int) -> StateT:
        """The fresh state of a stream that has seen nothing yet."""

    @property
    def is_streaming(self) -> bool:
        return self._streaming_state is not None

    @property
    def state(self) -> StateT:
        if self._streaming_state is None:
            raise RuntimeError(
                f"{type(self).__name__} is not streaming: use `with module.streaming(batch_size):`"
            )
        return self._streaming_state

    def streaming(self, batch_size: int) -> AbstractContextManager[None]:
        """Context in which this module and all its streaming children step chunk by chunk."""
        return streaming(self, batch_size)

    def reset_streaming(self, mask: Tensor | None = None) -> None:
        """Reset the masked batch items (all when `mask` is None) of every streaming child."""
        reset_streaming(self, mask)


class StreamingContainer(StreamingModule[StreamingState]):
    """A module without state of its own whose children stream (an encoder, a block)."""

    def init_state(self, batch_size: int) -> StreamingState:
        return StreamingState(batch_size)


def streaming_modules(module: nn.Module) -> list[StreamingModule]:
    """`module` and its descendants that are streaming modules, in `modules()` order."""
    return [m for m in module.modules() if isinstance(m, StreamingModule)]


@contextmanager
def streaming(module: nn.Module, batch_size: int) -> Iterator[None]:
    """Put every streaming module under `module` in streaming mode with fresh states.

    Works on any `nn.Module` (a model that only contains streaming modules, for instance).
    The states are dropped when the context exits. Layers may keep per-stream constants in
    `shared_field()`s of their state (e.g. weight-normed weights computed once, since a
    per-frame step is dominated by such fixed costs): weights must not change inside it.
    """
    modules = streaming_modules(module)
    already = [type(m).__name__ for m in modules if m.is_streaming]
    if already:
        raise RuntimeError(f"already streaming: {already}")
    try:
        for m in modules:
            m._streaming_state = m.init_state(batch_size)
        yield
    finally:
        for m in modules:
            m._streaming_state = None


def reset_streaming(module: nn.Module, mask: Tensor | None = None) -> None:
    """Reset the items where `mask` (B,) is True (all when None) in every streaming state."""
    for m in streaming_modules(module):
        state = m.state
        item_mask = torch.ones(state.batch_size, dtype=torch.bool) if mask is None else mask.bool()
        if item_mask.shape != (state.batch_size,):
            raise ValueError(f"mask shape {tuple(item_mask.shape)} != ({state.batch_size},)")
        state.reset(item_mask)


def module_device(module: nn.Module) -> torch.device:
    """Device of the first parameter or buffer (CPU for an empty module)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def module_dtype(module: nn.Module) -> torch.dtype:
    """Floating dtype of the first parameter (float32 for a module without parameters)."""
    for tensor in module.parameters():
        return tensor.dtype
    return torch.float32
