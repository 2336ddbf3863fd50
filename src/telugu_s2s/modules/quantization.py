"""Residual vector quantization with EMA codebooks, dead-code restarts and quantizer dropout.

Each codebook is the running (EMA) mean of the vectors it wins, so codebooks need no
gradient; the encoder gets a straight-through gradient and a commitment loss. A code not
chosen during the last `dead_code_patience * codebook_size` training vectors (that many
times its fair share) is "dead" and restarts on a random vector of the current batch. Training with a random number of codebooks per batch (quantizer
dropout) lets one model serve several bitrates: decode the first `k` codebooks of a code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMACodebook(nn.Module):
    """One codebook of `size` vectors of `dim`, updated by exponential moving averages."""

    def __init__(
        self,
        dim: int,
        size: int,
        decay: float = 0.99,
        dead_code_patience: float = 8.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.size, self.decay, self.eps = size, decay, eps
        self.dead_code_patience = dead_code_patience  # 0 disables restarts
        # embedding = embedding_sum / cluster_usage; both are EMAs over training batches.
        self.register_buffer("embedding_sum", torch.randn(size, dim))  # (N, D)
        self.register_buffer("cluster_usage", torch.ones(size))  # (N,)
        # Training vectors seen since each code was last chosen.
        self.register_buffer("idle_vectors", torch.zeros(size))  # (N,)
        self.register_buffer("initialized", torch.tensor(False))
        self._tables: tuple[Tensor, Tensor] | None = None
        self._cache_key: tuple[int, ...] | None = None

    @property
    def embedding(self) -> Tensor:
        return self._lookup_tables()[0]  # (N, D)

    def _lookup_tables(self) -> tuple[Tensor, Tensor]:
        """(embedding (N, D), -|e|^2 / 2 (N,)), cached while the buffers are unchanged.

        A streaming step looks codebooks up for one frame; recomputing N x D tables each
        time would cost more than the lookup. In-place updates and `load_state_dict` bump
        the buffers' versions and `.to()` moves them, which invalidates the cache.
        """
        buffers = (self.embedding_sum, self.cluster_usage)
        key: tuple[int, ...] | None = None  # buffers made under inference_mode have no version
        if not any(b.is_inference() for b in buffers):
            key = tuple(b._version for b in buffers) + tuple(b.data_ptr() for b in buffers)
        if self.training or key is None or self._cache_key != key:
            usage = self.cluster_usage.clamp(min=self.eps)  # (N,)
            embedding = self.embedding_sum / usage[:, None]  # (N, D)
            tables = (embedding, -0.5 * embedding.pow(2).sum(-1))  # (N, D), (N,)
            if self.training or key is None:  # in training the tables change every step
                return tables
            self._tables, self._cache_key = tables, key
        return self._tables

    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (M, D) -> (index of the nearest code (M,), that code (M, D))."""
        embedding, score_bias = self._lookup_tables()  # (N, D), (N,)
        # argmin |x - e|^2 = argmax (x.e - |e|^2 / 2): |x|^2 is the same for every code.
        codes = F.linear(x, embedding, score_bias).argmax(dim=-1)  # (M,)
        return codes, F.embedding(codes, embedding)

    def encode(self, x: Tensor) -> Tensor:
        """x (M, D) -> index of the nearest code (M,)."""
        return self.quantize(x)[0]

    def decode(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.embedding)  # (..., D)

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Start the codebook on random vectors of the first training batch x (M, D)."""
        if bool(self.initialized):
            return
        self.embedding_sum.copy_(_sample_vectors(x, self.size))
        self.cluster_usage.fill_(1.0)
        self.initialized.fill_(True)
        self._broadcast()

    @torch.no_grad()
    def update(self, x: Tensor, codes: Tensor) -> None:
        """EMA step on the batch x (M, D) with its codes (M,), then restart dead codes."""
        onehot = F.one_hot(codes, self.size).to(x.dtype)  # (M, N)
        usage = onehot.sum(0)  # (N,)
        sums = onehot.t() @ x  # (N, D)
        if _distributed():
            dist.all_reduce(usage)
            dist.all_reduce(sums)
        self.cluster_usage.mul_(self.decay).add_(usage, alpha=1 - self.decay)
        self.embedding_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.idle_vectors.add_(usage.sum()).masked_fill_(usage > 0, 0)
        if self.dead_code_patience > 0:
            self._restart_dead_codes(x)

    def _restart_dead_codes(self, x: Tensor) -> None:
        # A fairly used code goes unchosen for `patience` fair shares with chance e^-patience.
        dead = self.idle_vectors > self.dead_code_patience * self.size  # (N,)
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        # Restarted codes get average usage, so the next EMA steps do not drag them away.
        average = self.cluster_usage.mean()
        self.embedding_sum[dead] = _sample_vectors(x, num_dead) * average
        self.cluster_usage[dead] = average
        self.idle_vectors[dead] = 0
        self._broadcast()

    def _broadcast(self) -> None:
        # Restarts draw random vectors per rank: rank 0's choice wins so the ranks agree.
        if _distributed():
            for buffer in (self.embedding_sum, self.cluster_usage, self.idle_vectors):
                dist.broadcast(buffer, 0)


def _sample_vectors(x: Tensor, count: int) -> Tensor:
    """`count` random rows of x (M, D), without replacement when there are enough."""
    if x.shape[0] >= count:
        index = torch.randperm(x.shape[0], device=x.device)[:count]
    else:
        index = torch.randint(0, x.shape[0], (count,), device=x.device)
    return x[index]  # (count, D)


@dataclass
class QuantizerOutput:
    quantized: Tensor  # (B, D, T), straight-through: its gradient goes to the input
    codes: Tensor  # (B, n_q, T) int64
    commitment_loss: Tensor  # scalar: mean over the used codebooks of |residual - code|^2
    perplexity: Tensor  # (n_q,): exp(entropy) of each used codebook's codes in this batch


class ResidualVectorQuantizer(nn.Module):
    """RVQ over (B, dim, T): codebook k quantizes what codebooks 0..k-1 left over."""

    def __init__(
        self,
        dim: int,
        num_codebooks: int = 8,
        codebook_size: int = 1024,
        codebook_dim: int | None = None,
        decay: float = 0.99,
        dead_code_patience: float = 8.0,
        quantizer_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_codebooks, self.codebook_size = num_codebooks, codebook_size
        # Probability that a training batch uses a random n_q in [1, K] instead of all K.
        self.quantizer_dropout = quantizer_dropout
        codebook_dim = codebook_dim or dim
        # Optional projection to a smaller codebook space (cheaper nearest-neighbour search).
        self.input_proj = nn.Conv1d(dim, codebook_dim, 1) if codebook_dim != dim else nn.Identity()
        self.output_proj = nn.Conv1d(codebook_dim, dim, 1) if codebook_dim != dim else nn.Identity()
        self.codebooks = nn.ModuleList(
            EMACodebook(codebook_dim, codebook_size, decay, dead_code_patience)
            for _ in range(num_codebooks)
        )

    def sample_num_codebooks(self, device: torch.device | None = None) -> int:
        """Quantizer dropout: all K codebooks, or with probability p a uniform n_q in [1, K]."""
        n_q = self.num_codebooks
        if torch.rand(()) < self.quantizer_dropout:
            n_q = int(torch.randint(1, self.num_codebooks + 1, ()))
        if _distributed():  # every rank must update the same codebooks (all_reduce in `update`)
            shared = torch.tensor(n_q, device=device)
            dist.broadcast(shared, 0)
            n_q = int(shared)
        return n_q

    def forward(self, x: Tensor, num_codebooks: int | None = None) -> QuantizerOutput:
        """x (B, D, T) -> quantized with n_q codebooks (sampled by quantizer dropout in training)."""
        if num_codebooks is None:
            num_codebooks = (
                self.sample_num_codebooks(x.device) if self.training else self.num_codebooks
            )
        batch, frames = x.shape[0], x.shape[-1]
        latent = rearrange(self.input_proj(x), "b d t -> (b t) d").float()  # (M, Dc)
        residual = latent
        quantized = torch.zeros_like(latent)
        codes, losses, perplexities = [], [], []
        active = list(self.codebooks)[:num_codebooks]  # slicing a ModuleList builds one: slow
        with torch.autocast(x.device.type, enabled=False):  # nearest-neighbour search in float32
            for codebook in active:
                target = residual.detach()  # (M, Dc)
                if self.training:
                    codebook.initialize(target)
                with torch.no_grad():  # codes and vectors (M,), (M, Dc) from before the EMA step
                    codes_k, quantized_k = codebook.quantize(target)
                if self.training:
                    codebook.update(target, codes_k)
                losses.append(
                    F.mse_loss(residual, quantized_k) if residual.numel() else residual.sum()
                )
                perplexities.append(
                    _perplexity(torch.bincount(codes_k, minlength=self.codebook_size))
                )
                residual = residual - quantized_k
                quantized = quantized + quantized_k
                codes.append(codes_k)
        quantized = latent + (quantized - latent).detach()  # straight-through estimator
        quantized = rearrange(quantized.to(x.dtype), "(b t) d -> b d t", b=batch, t=frames)
        return QuantizerOutput(
            quantized=self.output_proj(quantized),  # (B, D, T)
            codes=rearrange(torch.stack(codes, dim=-1), "(b t) k -> b k t", b=batch, t=frames),
            commitment_loss=torch.stack(losses).mean(),
            perplexity=torch.stack(perplexities),
        )

    @torch.no_grad()
    def encode(self, x: Tensor, num_codebooks: int | None = None) -> Tensor:
        """x (B, D, T) -> codes (B, n_q, T); no EMA update, whatever the mode."""
        num_codebooks = num_codebooks or self.num_codebooks
        batch = x.shape[0]
        residual = rearrange(self.input_proj(x), "b d t -> (b t) d").float()  # (M, Dc)
        codes = []
        with torch.autocast(x.device.type, enabled=False):
            for codebook in list(self.codebooks)[:num_codebooks]:
                codes_k, quantized_k = codebook.quantize(residual)  # (M,), (M, Dc)
                residual = residual - quantized_k
                codes.append(codes_k)
        return rearrange(torch.stack(codes, dim=-1), "(b t) k -> b k t", b=batch)

    def decode(self, codes: Tensor) -> Tensor:
        """codes (B, k, T) with k <= K (the first k codebooks) -> (B, D, T)."""
        if not 1 <= codes.shape[1] <= self.num_codebooks:
            raise ValueError(
                f"{codes.shape[1]} codebooks given, the quantizer has {self.num_codebooks}"
            )
        quantized = self.codebooks[0].decode(codes[:, 0])  # (B, T, Dc)
        for k in range(1, codes.shape[1]):
            quantized = quantized + self.codebooks[k].decode(codes[:, k])
        return self.output_proj(rearrange(quantized, "b t d -> b d t"))  # (B, D, T)


def code_histogram(codes: Tensor, cardinality: int) -> Tensor:
    """codes (B, K, T) -> counts (K, cardinality); add these up over a test set."""
    per_codebook = rearrange(codes, "b k t -> k (b t)")
    return torch.stack([torch.bincount(c, minlength=cardinality) for c in per_codebook])


def _perplexity(counts: Tensor) -> Tensor:
    probs = counts.float() / counts.sum().clamp(min=1)
    return torch.exp(-(probs * probs.clamp(min=1e-12).log()).sum(-1))


def codebook_perplexity(histogram: Tensor) -> Tensor:
    """histogram (K, N) -> (K,) exp(entropy): N for uniform use, 1 for a single code."""
    return torch.stack([_perplexity(counts) for counts in histogram])


def codebook_usage(histogram: Tensor) -> Tensor:
    """histogram (K, N) -> (K,) fraction of each codebook's entries used at least once."""
    return (histogram > 0).float().mean(-1)
