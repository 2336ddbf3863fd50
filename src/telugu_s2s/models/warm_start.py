"""Start a model from another export's weights, tensor by tensor (`init_from`).

The staged S2S recipe (docs/training_s2s.md) starts each stage from the previous stage's
export. The stages share the network but not every tensor: a tensor is loaded when the
export holds one of the same name and shape, and every other one is reported, so that a
run's log says exactly what it did not inherit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from telugu_s2s.checkpoint import WEIGHTS_FILE, read_metadata

log = logging.getLogger(__name__)


@dataclass
class WarmStartReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ours, absent from the export
    unexpected: list[str] = field(default_factory=list)  # the export's, absent from ours
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=dict
    )  # name -> (export shape, our shape)

    @property
    def skipped(self) -> list[str]:
        """Our tensors that kept their own initialisation."""
        return sorted(self.missing + list(self.mismatched))

    def summary(self) -> str:
        lines = [f"init_from {self.source}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  kept our init (not in the export): {', '.join(self.missing)}")
        for name, (theirs, ours) in self.mismatched.items():
            lines.append(f"  kept our init (shape {list(theirs)} there, {list(ours)} here): {name}")
        if self.unexpected:
            lines.append(f"  ignored (not in this model): {', '.join(self.unexpected)}")
        return "\n".join(lines)


def load_matching_weights(net: nn.Module, directory: str | Path) -> WarmStartReport:
    """Copy every tensor of the export at `directory` whose name and shape match into `net`.

    Stored float16 weights are cast to `net`'s dtype. Raises when the folder is not an
    export or when not a single tensor matches (the wrong kind of model)."""
    directory = Path(directory)
    read_metadata(directory)  # a clear error when the folder is not an export
    theirs = load_file(str(directory / WEIGHTS_FILE))
    ours = net.state_dict()
    report = WarmStartReport(source=str(directory))
    update = {}
    for name, tensor in ours.items():
        if name not in theirs:
            report.missing.append(name)
        elif theirs[name].shape != tensor.shape:
            report.mismatched[name] = (tuple(theirs[name].shape), tuple(tensor.shape))
        else:
            update[name] = theirs[name].to(tensor.dtype)
            report.loaded.append(name)
    report.unexpected = sorted(set(theirs) - set(ours))
    if not update:
        raise ValueError(
            f"{directory}: no tensor matches this {type(net).__name__} in name and shape"
        )
    with torch.no_grad():
        for name, tensor in update.items():
            ours[name].copy_(tensor)  # state_dict tensors share storage with the parameters
    level = logging.WARNING if report.skipped else logging.INFO
    log.log(level, report.summary())
    return report


@torch.no_grad()
def init_code_embedding(embedding: nn.Embedding, code_vectors: torch.Tensor, seed: int = 0) -> None:
    """Start a table of K stacked codebooks (row k * card + j: code j of codebook k) from the
    codec's code vectors (K, card, L) through one fixed random projection, at the table's own
    scale. Codes the codec finds alike then start alike, and the sum over codebooks that the
    model takes is a projection of the codec's quantized latent: the model hears from its
    first step instead of learning 4,096 embeddings from scratch."""
    K, card, dim = code_vectors.shape
    if embedding.num_embeddings != K * card:
        raise ValueError(
            f"the embedding has {embedding.num_embeddings} rows, the codec {K} x {card} codes"
        )
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(dim, embedding.embedding_dim, generator=generator) / dim**0.5
    rows = code_vectors.reshape(K * card, dim).float() @ projection  # (K * card, D)
    rows = rows * (embedding.weight.std() / rows.std().clamp_min(1e-8))
    embedding.weight.copy_(rows.to(embedding.weight))
