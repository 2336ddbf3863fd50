"""Multi-scale STFT discriminator (EnCodec's MS-STFTD) and the GAN losses around it.

Each sub-discriminator looks at the complex STFT of the waveform at one resolution (real
and imaginary parts as two channels) through a small 2-D conv stack that downsamples
frequency only. It returns a patch of logits over (time, frequency) and the feature maps
of every layer, which feed the feature-matching loss. The discriminator only shapes
training: it is never exported with the codec.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class STFTDiscriminatorConfig:
    filters: int = 32  # channels of every conv layer (EnCodec: 32)
    n_ffts: tuple[int, ...] = (1024, 2048, 512)  # one sub-discriminator per resolution
    hop_divisor: int = 4  # hop = n_fft // hop_divisor
    dilations: tuple[int, ...] = (1, 2, 4)  # time dilations of the strided layers
    kernel_size: tuple[int, int] = (3, 9)  # (time, frequency)
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        self.n_ffts = tuple(int(n) for n in self.n_ffts)
        self.dilations = tuple(int(d) for d in self.dilations)
        self.kernel_size = (int(self.kernel_size[0]), int(self.kernel_size[1]))


@dataclass
class DiscriminatorOutput:
    logits: list[Tensor]  # per sub-discriminator (B, 1, frames, freq')
    features: list[list[Tensor]]  # per sub-discriminator, every layer's (B, C, frames, freq')


class STFTDiscriminator(nn.Module):
    """One resolution: waveform (B, 1, T) -> logits (B, 1, frames, freq') and features."""

    def __init__(self, n_fft: int, cfg: STFTDiscriminatorConfig) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, n_fft // cfg.hop_divisor
        self.negative_slope = cfg.negative_slope
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        kt, kf = cfg.kernel_size
        c = cfg.filters
        layers = [nn.Conv2d(2, c, cfg.kernel_size, padding=(kt // 2, kf // 2))]
        for d in cfg.dilations:  # halve frequency, widen the time context
            layers.append(
                nn.Conv2d(
                    c,
                    c,
                    cfg.kernel_size,
                    stride=(1, 2),
                    dilation=(d, 1),
                    padding=(d * (kt // 2), kf // 2),
                )
            )
        layers.append(nn.Conv2d(c, c, (kt, kt), padding=(kt // 2, kt // 2)))
        self.layers = nn.ModuleList(weight_norm(layer) for layer in layers)
        self.to_logits = weight_norm(nn.Conv2d(c, 1, (kt, kt), padding=(kt // 2, kt // 2)))

    def forward(self, audio: Tensor) -> tuple[Tensor, list[Tensor]]:
        spec = torch.stft(
            rearrange(audio, "b 1 t -> b t").float(),
            self.n_fft,
            self.hop,
            window=self.window,
            normalized=True,
            return_complex=True,
        )  # (B, freq, frames)
        x = rearrange(torch.view_as_real(spec), "b f t c -> b c t f")  # (B, 2, frames, freq)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), self.negative_slope)  # (B, C, frames, freq')
            features.append(x)
        return self.to_logits(x), features  # (B, 1, frames, freq')


class MultiScaleSTFTDiscriminator(nn.Module):
    """Waveform (B, 1, T) -> one `STFTDiscriminator` output per STFT resolution."""

    def __init__(self, cfg: STFTDiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or STFTDiscriminatorConfig()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, self.cfg) for n in self.cfg.n_ffts)

    def forward(self, audio: Tensor) -> DiscriminatorOutput:
        outputs = [d(audio) for d in self.discriminators]
        return DiscriminatorOutput([o[0] for o in outputs], [o[1] for o in outputs])


def discriminator_loss(real: list[Tensor], fake: list[Tensor], kind: str = "hinge") -> Tensor:
    """Mean over sub-discriminators of the loss that pushes real logits up and fake down."""
    losses = []
    for r, f in zip(real, fake, strict=True):
        if kind == "hinge":
            losses.append(F.relu(1 - r).mean() + F.relu(1 + f).mean())
        elif kind == "lsgan":
            losses.append((r - 1).pow(2).mean() + f.pow(2).mean())
        else:
            raise ValueError(f"unknown GAN loss {kind!r}; expected 'hinge' or 'lsgan'")
    return torch.stack(losses).mean()


def generator_adversarial_loss(fake: list[Tensor], kind: str = "hinge") -> Tensor:
    """Mean over sub-discriminators of the generator's loss on its own (fake) logits."""
    if kind == "hinge":
        losses = [F.relu(1 - f).mean() for f in fake]
    elif kind == "lsgan":
        losses = [(f - 1).pow(2).mean() for f in fake]
    else:
        raise ValueError(f"unknown GAN loss {kind!r}; expected 'hinge' or 'lsgan'")
    return torch.stack(losses).mean()


def feature_matching_loss(real: list[list[Tensor]], fake: list[list[Tensor]]) -> Tensor:
    """EnCodec's relative L1 between real and fake feature maps, averaged over layers.

    Dividing by the mean magnitude of the real features keeps every layer on one scale.
    Real features are targets: no gradient flows into them.
    """
    losses = []
    for real_maps, fake_maps in zip(real, fake, strict=True):
        for r, f in zip(real_maps, fake_maps, strict=True):
            r = r.detach()
            losses.append((r - f).abs().mean() / (r.abs().mean() + 1e-6))
    return torch.stack(losses).mean()
