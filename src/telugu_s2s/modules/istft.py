"""A causal, exactly streaming inverse STFT and the Vocos-style head that feeds it.

Vocos (Siuzdak, 2023) replaces a decoder's transposed-convolution upsampling by a head
that predicts one STFT frame per hop (log-magnitude and phase) and an inverse STFT: no
upsampling layers, so none of their periodic (checkerboard) artifacts.

Causal placement of the windows. STFT frame `j` is the windowed inverse FFT of one
predicted spectrum, and its window starts at sample `j * hop` and covers
`[j * hop, j * hop + n_fft)`. The frames are overlap-added with the synthesis window
alone (the head predicts spectra, so there is no analysis window to undo) and divided by
the window's mean overlap (`window.sum() / hop`, exact for a COLA window such as the
periodic Hann with `n_fft` a multiple of `2 * hop`). Sample `s` is then final once the
frame whose window starts in its hop, `s // hop`, has been added: later windows start
after it.

Streaming with one codec frame of latency. A codec frame of `upsample` hops yields
`upsample` STFT frames, whose windows all start inside that codec frame; their sum over
the frame's own samples is emitted at once, and what their windows hold beyond the
frame's end (the last `n_fft - hop` samples: the tails that reach into the next frames)
is kept in the state and added to the next chunk's output. Offline, those tails past the
last frame are dropped. So every emitted sample is final, chunked output equals offline
output, and the decoder adds no latency beyond its frame. The first `n_fft - hop` samples
of a stream (30 ms with hop 160 and n_fft 640) lack the tails of windows before it and
fade in, the same offline and streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from telugu_s2s.modules.streaming import StreamingModule, StreamingState, module_device


@dataclass
class OverlapAddState(StreamingState):
    tail: Tensor  # (B, n_fft - hop): the emitted windows' samples beyond the emitted output


class CausalISTFT(StreamingModule[OverlapAddState]):
    """Complex spectra (B, n_fft // 2 + 1, J) -> audio (B, J * hop), windows starting at j * hop."""

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        if not 0 < hop_length <= n_fft:
            raise ValueError(f"need 0 < hop_length <= n_fft, got {hop_length}, {n_fft}")
        self.n_fft, self.hop = n_fft, hop_length
        self.overlap = n_fft - hop_length
        window = torch.hann_window(n_fft, periodic=True)  # (n_fft,)
        # Mean number of windows over a sample, weighted: the OLA gain of a COLA window.
        self.register_buffer("window", window / (window.sum() / hop_length), persistent=False)

    def init_state(self, batch_size: int) -> OverlapAddState:
        return OverlapAddState(
            batch_size, tail=torch.zeros(batch_size, self.overlap, device=module_device(self))
        )

    def forward(self, spec: Tensor) -> Tensor:
        batch, _, frames = spec.shape
        if frames == 0:
            return spec.real.new_zeros(batch, 0)
        segments = (
            torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]
        )  # (B, n_fft, J)
        length = (frames - 1) * self.hop + self.n_fft
        audio = F.fold(
            segments, output_size=(1, length), kernel_size=(1, self.n_fft), stride=(1, self.hop)
        ).reshape(batch, length)  # (B, (J - 1) * hop + n_fft): overlap-added
        num_out = frames * self.hop
        state = self._streaming_state
        if state is not None:
            tail = state.tail.to(audio.dtype)
            head = audio[:, : self.overlap] + tail  # (B, overlap): the past windows' tails
            audio = torch.cat([head, audio[:, self.overlap :]], dim=-1)
            state.tail = audio[:, num_out:]  # (B, overlap)
        return audio[:, :num_out]  # (B, J * hop)


class ISTFTHead(nn.Module):
    """Features (B, C, J) -> audio (B, 1, J * hop): per frame a log-magnitude and a phase.

    As in Vocos: magnitude `exp(x)` clipped at 100, the phase as an angle whose cosine and
    sine give the spectrum's real and imaginary parts, so any phase is reachable without
    wrapping. The inverse STFT is the causal one above; the head itself is per frame.
    """

    def __init__(self, dim: int, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.bins = n_fft // 2 + 1
        self.proj = nn.Linear(dim, 2 * self.bins)
        self.istft = CausalISTFT(n_fft, hop_length)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, J) channels first -> (B, 1, J * hop)."""
        out = self.proj(x.transpose(1, 2)).transpose(1, 2).float()  # (B, 2 * bins, J)
        log_magnitude, phase = out.split(self.bins, dim=1)  # (B, bins, J) each
        magnitude = log_magnitude.exp().clamp(max=1e2)  # huge magnitudes blow up early training
        spec = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
        return self.istft(spec)[:, None].to(x.dtype)  # (B, 1, J * hop)
