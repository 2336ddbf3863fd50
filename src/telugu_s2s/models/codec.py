"""The streaming causal neural codec: SEANet encoder -> RVQ -> SEANet decoder.

16 kHz audio becomes 12.5 Hz frames of K codes (80 ms, 1280 samples per frame). Encoder
and decoder are causal with no look-ahead: the encoder emits a frame's codes once the
frame's last sample has arrived, and the decoder turns each code frame into that frame's
1280 samples at once, so the algorithmic latency is exactly one frame.

The S2S stage and the server depend only on `AudioTokenizer` (as audiocraft's LM depends
on `CompressionModel`), so the codec can be swapped.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from telugu_s2s.checkpoint import weights_fingerprint
from telugu_s2s.modules.quantization import ResidualVectorQuantizer
from telugu_s2s.modules.seanet import SEANetConfig, SEANetDecoder, SEANetEncoder
from telugu_s2s.modules.streaming import module_dtype, reset_streaming, streaming


class AudioTokenizer(nn.Module, ABC):
    """Audio <-> discrete codes (B, K, F), offline and streaming.

    Streaming: inside `with tokenizer.streaming(batch_size):`, `encode_step` takes audio
    chunks of any length and returns the code frames completed so far (possibly none);
    `decode_step` takes any number of code frames and returns `frames * frame_size`
    samples. `reset_streaming(mask)` restarts the masked batch items (sessions).
    """

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @property
    @abstractmethod
    def frame_size(self) -> int:
        """Audio samples per code frame."""

    @property
    @abstractmethod
    def num_codebooks(self) -> int: ...

    @property
    @abstractmethod
    def cardinality(self) -> int:
        """Entries per codebook: codes are in [0, cardinality)."""

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_size

    def codes_fingerprint(self) -> str:
        """Identifies the codes this tokenizer makes: a hash of every weight but the decoder's,
        so a decoder fine-tune keeps it and an S2S model trained on the codes still fits."""
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("decoder.")}
        return weights_fingerprint(state)

    @abstractmethod
    def encode(self, audio: Tensor, num_codebooks: int | None = None) -> Tensor:
        """audio (B, 1, T) -> codes (B, K, ceil(T / frame_size)) int64."""

    @abstractmethod
    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, k <= K, F) -> audio (B, 1, F * frame_size)."""

    @abstractmethod
    def streaming(self, batch_size: int) -> AbstractContextManager[None]: ...

    @abstractmethod
    def reset_streaming(self, mask: Tensor | None = None) -> None: ...

    @abstractmethod
    def encode_step(self, audio: Tensor, num_codebooks: int | None = None) -> Tensor:
        """audio chunk (B, 1, n) -> codes of the frames completed by it (B, K, f), f >= 0."""

    @abstractmethod
    def decode_step(self, codes: Tensor) -> Tensor:
        """codes (B, k, f), f >= 0 -> audio (B, 1, f * frame_size)."""


@dataclass
class CodecConfig:
    """Defaults are the tiny CPU codec; `CodecConfig.base()` is the one-GPU size.

    8 codebooks x 1024 entries at 12.5 Hz = 1000 bps (Mimi: 8 x 2048 = 1.1 kbps). Ten bits
    per code keep the S2S vocabulary small, and 1024 entries are easy to keep alive with
    restarts; quantizer dropout lets the first 1..8 codebooks serve 125..1000 bps.
    Strides (4, 5, 8, 8) start with a stride of 4, as Mimi does: four stages instead of
    five make a per-frame streaming step cheaper (fewer layers): with 12 filters it
    measured about 25% faster than (2, 4, 5, 8, 4) with 8, at the same MACs per frame.
    """

    sample_rate: int = 16000
    channels: int = 1
    # SEANet (see modules/seanet.py): product of ratios = frame size (1280 = 80 ms).
    ratios: tuple[int, ...] = (4, 5, 8, 8)
    n_filters: int = 12  # channels 12, 24, 48, 96, 192 from 16 kHz down to 12.5 Hz
    max_filters: int = 512
    dimension: int = 128
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 3
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm_layers: int = 0
    weight_norm: bool = True
    # Residual vector quantizer.
    num_codebooks: int = 8
    codebook_size: int = 1024
    codebook_dim: int | None = None  # None = dimension
    ema_decay: float = 0.99
    dead_code_patience: float = 8.0  # restart codes unused for this many x codebook_size vectors
    quantizer_dropout: float = 0.5  # probability of training a batch with n_q ~ U[1, K]

    def __post_init__(self) -> None:
        # Hydra and JSON hand lists over; a tuple keeps the config hashable and comparable.
        self.ratios = tuple(int(r) for r in self.ratios)

    @property
    def frame_size(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.frame_size

    @property
    def bitrate(self) -> float:
        """Bits per second with all codebooks."""
        return self.frame_rate * self.num_codebooks * math.log2(self.codebook_size)

    def seanet(self) -> SEANetConfig:
        return SEANetConfig(
            channels=self.channels,
            dimension=self.dimension,
            n_filters=self.n_filters,
            max_filters=self.max_filters,
            ratios=tuple(self.ratios),
            kernel_size=self.kernel_size,
            last_kernel_size=self.last_kernel_size,
            residual_kernel_size=self.residual_kernel_size,
            n_residual_layers=self.n_residual_layers,
            dilation_base=self.dilation_base,
            compress=self.compress,
            lstm_layers=self.lstm_layers,
            weight_norm=self.weight_norm,
        )

    @classmethod
    def base(cls) -> CodecConfig:
        """One-GPU codec: 4x wider SEANet (16x MACs), a 2-layer LSTM, 8 x 2048 codes (1100 bps, as Mimi)."""
        return cls(n_filters=48, max_filters=1024, dimension=256, lstm_layers=2, codebook_size=2048)


@dataclass
class CodecOutput:
    audio: Tensor  # (B, 1, T) reconstruction, same length as the input
    codes: Tensor  # (B, n_q, F)
    commitment_loss: Tensor  # scalar
    perplexity: Tensor  # (n_q,) per used codebook, on this batch
    num_codebooks: int  # n_q used (quantizer dropout samples it in training)
    # The first codebook's quantized latent (B, codebook_dim, F), straight-through: what a
    # semantic loss distils content into (None where no encoder pass trained it).
    first_codebook: Tensor | None = None


class CodecModel(AudioTokenizer):
    config_class = CodecConfig

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SEANetEncoder(cfg.seanet())
        self.quantizer = ResidualVectorQuantizer(
            cfg.dimension,
            num_codebooks=cfg.num_codebooks,
            codebook_size=cfg.codebook_size,
            codebook_dim=cfg.codebook_dim,
            decay=cfg.ema_decay,
            dead_code_patience=cfg.dead_code_patience,
            quantizer_dropout=cfg.quantizer_dropout,
        )
        self.decoder = self.build_decoder(cfg)

    def build_decoder(self, cfg: CodecConfig) -> nn.Module:
        """Latent (B, dimension, F) -> audio (B, channels, F * frame_size); codec v2 overrides it."""
        return SEANetDecoder(cfg.seanet())

    # AudioTokenizer properties.
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def frame_size(self) -> int:
        return self.cfg.frame_size

    @property
    def num_codebooks(self) -> int:
        return self.cfg.num_codebooks

    @property
    def cardinality(self) -> int:
        return self.cfg.codebook_size

    @torch.no_grad()
    def code_vectors(self, num_codebooks: int | None = None) -> Tensor:
        """The first K codebooks' vectors (K, cardinality, latent dim): what each code stands for."""
        books = self.quantizer.codebooks[: num_codebooks or self.num_codebooks]
        return torch.stack([book.embedding for book in books])

    @property
    def bitrate(self) -> float:
        return self.cfg.bitrate

    def _pad_to_frames(self, audio: Tensor) -> Tensor:
        """Right-pad (B, C, T) with zeros to whole frames; causality keeps earlier frames intact."""
        return F.pad(audio, (0, -audio.shape[-1] % self.frame_size))

    def forward(self, audio: Tensor, num_codebooks: int | None = None) -> CodecOutput:
        """Training pass: audio (B, 1, T) -> reconstruction (B, 1, T) with n_q codebooks.

        In training mode the EMA codebooks update and n_q follows quantizer dropout unless
        `num_codebooks` is given.
        """
        length = audio.shape[-1]
        latent = self.encoder(self._pad_to_frames(audio))  # (B, D, F)
        quantized = self.quantizer(latent, num_codebooks)
        audio_hat = self.decoder(quantized.quantized)  # (B, 1, F * frame_size)
        return CodecOutput(
            audio=audio_hat[..., :length],
            codes=quantized.codes,
            commitment_loss=quantized.commitment_loss,
            perplexity=quantized.perplexity,
            num_codebooks=quantized.codes.shape[1],
            first_codebook=self.first_codebook_latent(latent, quantized.codes),
        )

    def first_codebook_latent(self, latent: Tensor, codes: Tensor) -> Tensor:
        """The first codebook's vectors (B, codebook_dim, F) for `codes`, with the gradient of
        the encoder's `latent` (B, D, F) passed straight through, as the quantizer does."""
        projected = self.quantizer.input_proj(latent)  # (B, Dc, F)
        first = self.quantizer.codebooks[0].decode(codes[:, 0]).transpose(1, 2).to(projected)
        return projected + (first - projected).detach()

    @torch.no_grad()
    def encode(self, audio: Tensor, num_codebooks: int | None = None) -> Tensor:
        latent = self.encoder(self._pad_to_frames(audio))  # (B, D, F)
        return self.quantizer.encode(latent, num_codebooks)  # (B, n_q, F)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        return self.decoder(self.quantizer.decode(codes))  # (B, 1, F * frame_size)

    # Streaming.
    def streaming(self, batch_size: int) -> AbstractContextManager[None]:
        return streaming(self, batch_size)

    def reset_streaming(self, mask: Tensor | None = None) -> None:
        reset_streaming(self, mask)

    def _check_streaming(self) -> None:
        if not self.encoder.is_streaming:
            raise RuntimeError("encode_step/decode_step need `with codec.streaming(batch_size):`")

    @torch.no_grad()
    def encode_step(self, audio: Tensor, num_codebooks: int | None = None) -> Tensor:
        self._check_streaming()
        latent = self.encoder(audio)  # (B, D, f) for the frames this chunk completed
        return self.quantizer.encode(latent, num_codebooks)  # (B, n_q, f)

    @torch.no_grad()
    def decode_step(self, codes: Tensor) -> Tensor:
        self._check_streaming()
        if codes.shape[-1] == 0:
            dtype = module_dtype(self.decoder)
            return codes.new_zeros(codes.shape[0], self.cfg.channels, 0, dtype=dtype)
        return self.decoder(self.quantizer.decode(codes))  # (B, 1, f * frame_size)
