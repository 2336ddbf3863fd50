"""Codec v2: the v1 encoder and RVQ (12.5 Hz, 8 codebooks) with a Vocos-style decoder.

A probe of issue 14 froze the v1 encoder and quantizer and trained a small ConvNeXt +
iSTFT decoder on their codes: STOI on the test split rose from 0.80 to 0.87. The SEANet
decoder's transposed convolutions upsample 1280x in four stages, each a source of
periodic artifacts (the 100 Hz buzz the v1 decoder fine-tunes removed); the Vocos decoder
predicts 100 STFT frames a second and inverts them, with no upsampling layer at all.

Encoder, quantizer, frame rate, bitrate and the streaming contract (`AudioTokenizer`,
one frame of latency, chunked == offline) are v1's; only `build_decoder` differs, so a
v2 export loads with `load_pretrained` as v1 does, and v1 exports are untouched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from telugu_s2s.checkpoint import load_pretrained
from telugu_s2s.models.codec import CodecConfig, CodecModel
from telugu_s2s.modules.vocos import VocosDecoder, VocosDecoderConfig


@dataclass
class CodecV2Config(CodecConfig):
    """`CodecConfig` (the encoder and quantizer) plus the Vocos decoder's sizes.

    Defaults are the tiny CPU codec: the decoder has about 2.7M parameters, the
    size of the issue's probe.
    """

    decoder_frame_dim: int = 256  # channels of the ConvNeXt blocks at 12.5 Hz
    decoder_frame_blocks: int = 2
    decoder_frame_kernel: int = 3
    decoder_upsample: int = 8  # STFT frames per code frame: 100 Hz, hop 160 samples
    decoder_dim: int = 192  # channels of the ConvNeXt blocks at 100 Hz
    decoder_blocks: int = 6
    decoder_kernel: int = 7
    decoder_mlp_ratio: float = 3.0
    decoder_n_fft: int = 640  # 4 hops of 160 samples (40 ms)

    def vocos(self) -> VocosDecoderConfig:
        return VocosDecoderConfig(
            dimension=self.dimension,
            frame_size=self.frame_size,
            frame_dim=self.decoder_frame_dim,
            frame_blocks=self.decoder_frame_blocks,
            frame_kernel=self.decoder_frame_kernel,
            upsample=self.decoder_upsample,
            dim=self.decoder_dim,
            blocks=self.decoder_blocks,
            kernel=self.decoder_kernel,
            mlp_ratio=self.decoder_mlp_ratio,
            n_fft=self.decoder_n_fft,
        )

    @classmethod
    def base(cls) -> CodecV2Config:
        """One GPU: v1 base's encoder and 8 x 2048 codes (1.1 kbps), a wider, deeper decoder."""
        return cls(
            n_filters=48, max_filters=1024, dimension=256, lstm_layers=2, codebook_size=2048,
            decoder_frame_dim=512, decoder_frame_blocks=4, decoder_dim=384, decoder_blocks=8,
        )  # fmt: skip


class CodecV2Model(CodecModel):
    """SEANet encoder -> RVQ -> Vocos decoder; the same `AudioTokenizer` as `CodecModel`."""

    config_class = CodecV2Config

    def __init__(self, cfg: CodecV2Config) -> None:
        if cfg.channels != 1:
            raise ValueError(f"the iSTFT decoder makes mono audio, got channels={cfg.channels}")
        super().__init__(cfg)

    def build_decoder(self, cfg: CodecV2Config) -> nn.Module:
        return VocosDecoder(cfg.vocos())


def load_encoder_and_quantizer(net: CodecModel, directory: str | Path) -> None:
    """Start `net`'s encoder and codebooks from another codec export (v1 or v2) with the same
    encoder and quantizer settings. With the decoder trained alone (`decoder_only`), every
    code stays the export's, so S2S token caches and checkpoints built on it stay valid: the
    recipe of issue 14's probe (v1 codes, a Vocos decoder)."""
    source = load_pretrained(directory)
    shared = [f.name for f in dataclasses.fields(CodecConfig)]  # encoder, quantizer, rates
    differ = [k for k in shared if getattr(source.cfg, k, None) != getattr(net.cfg, k)]
    if differ:
        raise ValueError(
            f"{directory}: encoder/quantizer config differs from this run's in {differ}"
        )
    state = {
        k: v for k, v in source.state_dict().items() if k.startswith(("encoder.", "quantizer."))
    }
    missing = net.load_state_dict(state, strict=False).missing_keys
    if any(not k.startswith("decoder.") for k in missing):
        raise ValueError(f"{directory} lacks encoder or quantizer weights: {missing[:5]}")
