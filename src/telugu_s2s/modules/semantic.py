"""Semantic distillation into the first codebook (as Mimi does with WavLM).

A small projection of the first codebook's quantized latent is regressed, by cosine
distance per frame, onto the features of a frozen teacher: any `nn.Module` that maps
audio (B, T) to frame features (B, F', D), for instance a recognizer's last recurrent
layer. The teacher's frames are average-pooled onto the codec's (40 ms recognizer frames
pair up into 80 ms codec frames). The gradient reaches the encoder through the
quantizer's straight-through estimator, so the first codebook, the S2S model's first
stream, learns to carry what the teacher hears: the words. The projection exists only
for training (like the discriminator) and is not exported with the codec.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def teacher_dim(teacher: nn.Module, sample_rate: int) -> int:
    """The feature size D of a teacher (B, T) -> (B, F', D), from one second of silence."""
    with torch.no_grad():
        features = teacher.eval()(torch.zeros(1, sample_rate))
    if features.dim() != 3 or features.shape[0] != 1:
        raise ValueError(
            f"a semantic teacher maps audio (B, T) to (B, frames, dim), got {tuple(features.shape)}"
        )
    return int(features.shape[-1])


class SemanticDistillation(nn.Module):
    """first-codebook latent (B, Dc, F) and audio (B, 1, T) -> 1 - cosine per item (B,)."""

    def __init__(self, teacher: nn.Module, latent_dim: int, sample_rate: int) -> None:
        super().__init__()
        self.teacher = teacher.requires_grad_(False)
        self.projection = nn.Conv1d(latent_dim, teacher_dim(teacher, sample_rate), 1)

    def target(self, audio: Tensor, frames: int) -> Tensor:
        """The teacher's features of audio (B, 1, T), pooled onto `frames` frames: (B, D, frames)."""
        teacher = self.teacher.eval()  # dropout and BatchNorm as in inference, always
        with torch.no_grad():
            features = teacher(audio[:, 0])  # (B, F', D)
        return F.adaptive_avg_pool1d(features.transpose(1, 2).float(), frames)

    def forward(self, first_codebook: Tensor, audio: Tensor) -> Tensor:
        target = self.target(audio, first_codebook.shape[-1])  # (B, D, F)
        prediction = self.projection(first_codebook.float())  # (B, D, F)
        return 1.0 - F.cosine_similarity(prediction, target, dim=1).mean(-1)  # (B,)


class LayerFeatures(nn.Module):
    """A frozen model's named layer as a teacher: audio (B, T) -> that layer's output (B, F', D).

    The whole model runs (so its own front end is used, whatever it is) and a forward hook
    keeps the layer's output: the first element of a tuple (an RNN's sequence), unpacked
    when packed, channels last. For the recognizer, `layer="rnn"` is its last GRU layer's
    output at 40 ms frames (both directions).
    """

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        self.model, self.layer = model.requires_grad_(False).eval(), layer
        self.model.get_submodule(layer)  # a clear error now for a wrong name

    def forward(self, audio: Tensor) -> Tensor:
        captured: list = []
        hook = self.model.get_submodule(self.layer).register_forward_hook(
            lambda module, inputs, output: captured.append(output)
        )
        try:
            self.model(audio)
        finally:
            hook.remove()
        out = captured[-1][0] if isinstance(captured[-1], tuple) else captured[-1]
        if isinstance(out, PackedSequence):
            out = pad_packed_sequence(out, batch_first=True)[0]
        return out  # (B, F', D)


def recognizer_teacher(directory: str | Path, layer: str = "rnn") -> LayerFeatures:
    """The exported recognizer (`stage=asr`) as the semantic teacher, for Hydra:
    `+model.semantic_teacher._target_=telugu_s2s.modules.semantic.recognizer_teacher`."""
    from telugu_s2s.checkpoint import load_pretrained

    return LayerFeatures(load_pretrained(directory), layer)
