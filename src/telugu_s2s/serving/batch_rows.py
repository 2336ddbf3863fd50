"""Rows of a streaming batch: grow, shrink, gather and scatter the sessions' states.

The engine keeps one batch row per *joined* session (no free rows), so a tick that steps
every session runs the models on exactly the live batch with no copying. The functions
here re-lay that batch out:

- `reorder_rows(module, index, fresh)`: the new batch is rows `index` of the old batch
  followed by `fresh` fresh rows (join: append; leave: drop; both keep the others' states).
- `gather_rows` / `scatter_rows`: a tick where only some rows step (a session catching up
  with two frames) runs on a copy of those rows and writes them back.
- `roll_rings`: the streaming transformer's KV ring has one write index shared by all rows
  (they step together). A row that skipped a step is rotated so that its oldest entry sits
  at the shared index again; otherwise its next frame would overwrite a newer entry.

All of it works on the typed `StreamingState` dataclasses: every non-shared tensor field
whose first dimension is the batch is per row; other fields (the ring's write index, the
start tokens) belong to the whole batch.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from telugu_s2s.models.codec import AudioTokenizer
from telugu_s2s.models.s2s_generation import S2SGenerator
from telugu_s2s.modules.streaming import StreamingModule, StreamingState, streaming_modules
from telugu_s2s.modules.transformer import CausalSelfAttention, StreamingTransformer


def _row_fields(state: StreamingState) -> list[str]:
    names = []
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        if field.metadata.get("shared") or not isinstance(value, Tensor) or value.dim() == 0:
            continue
        if value.shape[0] == state.batch_size:
            names.append(field.name)
    return names


def select_state(state: StreamingState, index: Tensor) -> StreamingState:
    """A new state holding rows `index` (n,) of `state` (copies)."""
    picked = {name: getattr(state, name).index_select(0, index.to(getattr(state, name).device))
              for name in _row_fields(state)}  # fmt: skip
    new = dataclasses.replace(state, batch_size=int(index.numel()), **picked)
    if hasattr(new, "lockstep"):
        new.lockstep = None
    return new


def reorder_rows(module: nn.Module, index: Tensor, fresh: int = 0) -> None:
    """Every streaming state under `module` becomes rows `index` of itself + `fresh` new rows."""
    for m in streaming_modules(module):
        state = m.state
        kept = select_state(state, index)
        if fresh:
            new = m.init_state(fresh)
            for name in _row_fields(state):
                setattr(kept, name, torch.cat([getattr(kept, name), getattr(new, name)]))
            kept.batch_size += fresh
        if hasattr(kept, "lockstep") and kept.batch_size == fresh:  # all fresh: in lockstep
            kept.lockstep, kept.write = 0, 0
        m._streaming_state = kept


def gather_rows(module: nn.Module, index: Tensor) -> dict[StreamingModule, StreamingState]:
    """Swap in the states of rows `index`; returns the full states for `scatter_rows`."""
    full = {}
    for m in streaming_modules(module):
        full[m] = m.state
        m._streaming_state = select_state(m.state, index)
    return full


def scatter_rows(full: dict[StreamingModule, StreamingState], index: Tensor) -> None:
    """Write the stepped rows back into the full states and swap those back in."""
    for m, state in full.items():
        part = m.state
        for name in _row_fields(state):
            value = getattr(state, name)
            setattr(state, name, value.index_copy(0, index.to(value.device), getattr(part, name)))
        for field in dataclasses.fields(state):  # batch-wide fields follow the stepped rows
            if field.name != "batch_size" and field.name not in _row_fields(state):
                setattr(state, field.name, getattr(part, field.name))
        if hasattr(state, "lockstep"):
            state.lockstep = None
        m._streaming_state = state


def roll_rings(module: nn.Module, index: Tensor, shift: int) -> None:
    """Rotate the KV rings of rows `index` by `shift` steps (rows that skipped `shift` steps)."""
    if shift == 0 or index.numel() == 0:
        return
    for transformer in module.modules():
        if not isinstance(transformer, StreamingTransformer) or not transformer.is_streaming:
            continue
        state = transformer.state
        i = index.to(state.positions.device)
        state.positions[i] = state.positions[i].roll(shift, dims=1)  # (n, C)
        state.lockstep = None
        for attn in transformer.modules():
            if isinstance(attn, CausalSelfAttention):
                kv = attn.state
                kv.keys[i] = kv.keys[i].roll(shift, dims=2)  # (n, H, C, Dh)
                kv.values[i] = kv.values[i].roll(shift, dims=2)


def select_object_rows(obj: object, batch_size: int, index: Tensor, fresh: int = 0) -> object:
    """A shallow copy of `obj` whose per-row attributes (tensors with a first dimension of
    `batch_size`, and lists of that length) hold rows `index`, tensors plus `fresh` zero rows
    (lists get none: the caller appends what a fresh row needs)."""
    view = copy.copy(obj)
    rows = index.tolist()
    for name, value in vars(obj).items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch_size:
            kept = value.index_select(0, index.to(value.device))
            if fresh:
                kept = torch.cat([kept, value.new_zeros(fresh, *value.shape[1:])])
            setattr(view, name, kept)
        elif isinstance(value, list) and len(value) == batch_size:
            setattr(view, name, [value[r] for r in rows])
    return view


class SessionRows:
    """The rows of a codec's streaming state and an `S2SGenerator` (its model's streaming
    state and per-row settings), laid out and stepped together, one row per session."""

    def __init__(self, codec: AudioTokenizer, generator: S2SGenerator):
        self.codec, self.generator, self.model = codec, generator, generator.model

    @property
    def size(self) -> int:
        return self.generator.batch_size

    def _twins(self, index: Tensor, batch: int) -> Tensor:
        """Rows of the S2S stream: with guidance the null-speaker twins follow at + batch."""
        return torch.cat([index, index + batch]) if self.generator.guided else index

    def relayout(self, keep: list[int], fresh: int = 0) -> None:
        """The batch becomes rows `keep` (in that order) plus `fresh` new rows at the end.
        A fresh row is a fresh codec stream; `generator.join` resets its S2S state."""
        gen, batch, n = self.generator, self.size, len(keep)
        index = torch.tensor(keep, dtype=torch.long)
        reorder_rows(self.codec, index, fresh)
        if gen.guided:  # [kept, kept twins, new, new twins] -> [kept, new, kept twins, new twins]
            reorder_rows(self.model, self._twins(index, batch), 2 * fresh)
            if fresh:
                order = [*range(n), *range(2 * n, 2 * n + fresh), *range(n, 2 * n),
                         *range(2 * n + fresh, 2 * (n + fresh))]  # fmt: skip
                reorder_rows(self.model, torch.tensor(order))
        else:
            reorder_rows(self.model, index, fresh)
        view = select_object_rows(gen, batch, index, fresh)
        view.rngs = [gen.rngs[r] for r in keep] + [
            torch.Generator(device=gen.device) for _ in range(fresh)
        ]
        view.plans = [gen.plans[r] for r in keep] + [None] * fresh
        view.batch_size = n + fresh
        vars(gen).update(vars(view))

    @contextmanager
    def subset(self, rows: list[int]) -> Iterator[None]:
        """Inside, the codec and the generator hold only `rows` (sorted); on exit the stepped
        rows go back and the rings of the rows that skipped are rotated by the steps taken."""
        gen, batch = self.generator, self.size
        index = torch.tensor(rows, dtype=torch.long)
        twins = self._twins(index, batch)
        codec_states, model_states = gather_rows(self.codec, index), gather_rows(self.model, twins)
        settings = dict(vars(gen))
        view = select_object_rows(gen, batch, index)
        view.batch_size = len(rows)
        vars(gen).update(vars(view))
        steps = self._ring_write()
        try:
            yield
        finally:
            steps = (self._ring_write() - steps) % self.model.cfg.context_frames
            vars(gen).update(settings)
            scatter_rows(codec_states, index)
            scatter_rows(model_states, twins)
            skipped = torch.tensor([r for r in range(batch) if r not in rows], dtype=torch.long)
            roll_rings(self.model, self._twins(skipped, batch), steps)

    def _ring_write(self) -> int:
        return self.model.temporal.state.write
