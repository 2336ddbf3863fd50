"""Speaker encoder: ECAPA-TDNN-lite over log-mel, with attentive statistics pooling.

Audio (B, T) at 16 kHz -> L2-normalised embedding (B, 192). Utterances of different
lengths can share a padded batch: `lengths` masks every layer that looks across time
(convolutions, SE squeeze, pooling), so a clip's embedding does not depend on its
padding. Trained with `AAMSoftmax` (additive angular margin) over all synthetic voices.

How the S2S stage consumes the embedding is described in docs/conditioning.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from telugu_s2s.modules.features import MelConfig, MelSpectrogram


def _speaker_mel() -> MelConfig:
    # Zero ("constant") STFT padding: frames at the end of a clip then see the same zeros
    # whether the clip is alone or padded in a batch.
    return MelConfig(n_fft=512, win_length=400, hop_length=160, n_mels=80, pad_mode="constant")


@dataclass
class SpeakerEncoderConfig:
    mel: MelConfig = field(default_factory=_speaker_mel)
    channels: int = 192  # width of the SE-Res2 blocks
    res2_scale: int = 4  # Res2Net split: channels are processed in `scale` groups
    se_channels: int = 48  # squeeze-excitation bottleneck
    kernel_size: int = 3
    dilations: tuple[int, ...] = (2, 3, 4)  # one SE-Res2 block per dilation
    mfa_channels: int = 512  # multi-layer feature aggregation (concat of block outputs)
    attention_channels: int = 128
    embedding_dim: int = 192


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over time of x (B, C, T) where mask (B, 1, T) is 1; optional weights (B, C, T)."""
    w = mask if weights is None else weights * mask  # (B, C|1, T)
    w = w / w.sum(dim=-1, keepdim=True).clamp(min=eps)
    mean = (x * w).sum(dim=-1, keepdim=True)  # (B, C, 1)
    var = ((x - mean).pow(2) * w).sum(dim=-1, keepdim=True)  # (B, C, 1)
    return mean, var.clamp(min=eps).sqrt()


class TDNNBlock(nn.Module):
    """Conv1d -> ReLU -> BatchNorm; padded frames are zeroed so the next conv sees zeros."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1
    ):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, dilation=dilation, padding=padding
        )
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.norm(F.relu(self.conv(x))) * mask  # (B, C_out, T)


class Res2Conv(nn.Module):
    """Res2Net: split channels in `scale` groups; each group's conv also sees the previous output."""

    def __init__(self, channels: int, scale: int, kernel_size: int, dilation: int):
        super().__init__()
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by res2_scale {scale}")
        width = channels // scale
        self.convs = nn.ModuleList(
            TDNNBlock(width, width, kernel_size, dilation) for _ in range(scale - 1)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        groups = x.chunk(len(self.convs) + 1, dim=1)  # scale x (B, C/scale, T)
        outputs, previous = [groups[0]], None
        for conv, group in zip(self.convs, groups[1:], strict=True):
            previous = conv(group if previous is None else group + previous, mask)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)  # (B, C, T)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.down = nn.Conv1d(channels, bottleneck, 1)
        self.up = nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        squeeze, _ = masked_mean_std(x, mask)  # (B, C, 1)
        gate = torch.sigmoid(self.up(F.relu(self.down(squeeze))))  # (B, C, 1)
        return x * gate


class SERes2Block(nn.Module):
    def __init__(
        self, channels: int, scale: int, se_channels: int, kernel_size: int, dilation: int
    ):
        super().__init__()
        self.pre = TDNNBlock(channels, channels)
        self.res2 = Res2Conv(channels, scale, kernel_size, dilation)
        self.post = TDNNBlock(channels, channels)
        self.se = SqueezeExcite(channels, se_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.post(self.res2(self.pre(x, mask), mask), mask)  # (B, C, T)
        return (self.se(y, mask) + x) * mask


class AttentiveStatsPooling(nn.Module):
    """ECAPA pooling: attention over time (with global context) -> weighted mean and std."""

    def __init__(self, channels: int, attention_channels: int):
        super().__init__()
        self.context = TDNNBlock(3 * channels, attention_channels)
        self.score = nn.Conv1d(attention_channels, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, std = masked_mean_std(x, mask)  # (B, C, 1) each
        frames = x.shape[-1]
        context = torch.cat([x, mean.expand(-1, -1, frames), std.expand(-1, -1, frames)], dim=1)
        logits = self.score(torch.tanh(self.context(context, mask)))  # (B, C, T)
        logits = logits.masked_fill(mask == 0, float("-inf"))
        attention = torch.softmax(logits, dim=-1)  # (B, C, T), per-channel weights over time
        mean, std = masked_mean_std(x, mask, weights=attention)  # (B, C, 1) each
        return rearrange(torch.cat([mean, std], dim=1), "b c 1 -> b c")  # (B, 2C)


class SpeakerEncoder(nn.Module):
    config_class = SpeakerEncoderConfig

    def __init__(self, cfg: SpeakerEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.frontend = MelSpectrogram(cfg.mel)
        self.stem = TDNNBlock(cfg.mel.n_mels, cfg.channels, kernel_size=5)
        self.blocks = nn.ModuleList(
            SERes2Block(cfg.channels, cfg.res2_scale, cfg.se_channels, cfg.kernel_size, d)
            for d in cfg.dilations
        )
        self.aggregate = TDNNBlock(len(cfg.dilations) * cfg.channels, cfg.mfa_channels)
        self.pooling = AttentiveStatsPooling(cfg.mfa_channels, cfg.attention_channels)
        self.pooled_norm = nn.BatchNorm1d(2 * cfg.mfa_channels)
        self.head = nn.Linear(2 * cfg.mfa_channels, cfg.embedding_dim)

    @property
    def embedding_dim(self) -> int:
        return self.cfg.embedding_dim

    @property
    def sample_rate(self) -> int:
        return self.cfg.mel.sample_rate

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Audio (B, 1, T) or (B, T), zero-padded; lengths (B,) in samples -> embeddings (B, D)."""
        if audio.dim() == 3:
            audio = rearrange(audio, "b 1 t -> b t")
        if audio.dim() != 2:
            raise ValueError(f"expected audio (B, T) or (B, 1, T), got {tuple(audio.shape)}")
        batch, num_samples = audio.shape
        if lengths is None:
            lengths = torch.full((batch,), num_samples, dtype=torch.long, device=audio.device)
        else:
            lengths = lengths.to(device=audio.device, dtype=torch.long)
            if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > num_samples:
                raise ValueError(
                    f"lengths must be (B,) in 1..{num_samples}, got {lengths.tolist()}"
                )
            # Whatever the caller padded with, the frontend must see zeros there.
            sample_mask = torch.arange(num_samples, device=audio.device) < lengths[:, None]
            audio = audio * sample_mask  # (B, T)

        feats = self.frontend(audio)  # (B, M, F)
        frame_lengths = self.frontend.num_frames(lengths).clamp(max=feats.shape[-1])  # (B,)
        frame_ids = torch.arange(feats.shape[-1], device=audio.device)
        mask = rearrange(frame_ids < frame_lengths[:, None], "b t -> b 1 t").to(feats.dtype)
        # Per-utterance mean normalisation: removes channel/gain offsets from the log-mel.
        feats_mean, _ = masked_mean_std(feats, mask)  # (B, M, 1)
        x = self.stem((feats - feats_mean) * mask, mask)  # (B, C, F)

        block_outputs = []
        for block in self.blocks:
            x = block(x, mask)  # (B, C, F)
            block_outputs.append(x)
        x = self.aggregate(torch.cat(block_outputs, dim=1), mask)  # (B, mfa, F)
        pooled = self.pooled_norm(self.pooling(x, mask))  # (B, 2 * mfa)
        return F.normalize(self.head(pooled), dim=-1)  # (B, D), unit norm


class AAMSoftmax(nn.Module):
    """Additive angular margin softmax (ArcFace): logits s * cos(theta + m) for the target class.

    Returns `(loss, logits)`; the logits are the margin-free `s * cos(theta)` used for
    accuracy and identification. `margin` is a plain attribute so training can ramp it up.
    """

    def __init__(
        self, embedding_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0
    ):
        super().__init__()
        self.margin = margin
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))  # class centres
        nn.init.xavier_normal_(self.weight)

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """embeddings (B, D), labels (B,) -> (scalar loss, logits (B, num_classes))."""
        cosine = F.linear(
            F.normalize(embeddings, dim=-1), F.normalize(self.weight, dim=-1)
        )  # (B, K)
        cosine = cosine.clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        m = self.margin
        sine = (1.0 - cosine.pow(2)).sqrt()
        with_margin = cosine * math.cos(m) - sine * math.sin(m)  # cos(theta + m)
        # Past theta = pi - m, cos(theta + m) would rise again; continue it monotonically.
        with_margin = torch.where(
            cosine > math.cos(math.pi - m), with_margin, cosine - m * math.sin(m)
        )
        target = F.one_hot(labels, num_classes=cosine.shape[-1]).bool()  # (B, K)
        margin_logits = self.scale * torch.where(target, with_margin, cosine)  # (B, K)
        loss = F.cross_entropy(margin_logits, labels)
        return loss, self.scale * cosine
