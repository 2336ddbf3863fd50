"""Codec stage LightningModule: reconstruction, commitment and adversarial training of `CodecModel`.

Losses (generator): multi-scale log-mel L1 + multi-resolution STFT + waveform L1 +
commitment (+ an optional speaker consistency term from a frozen speaker encoder), and
once `adversarial_start_step` generator steps have passed, a hinge (or LSGAN) loss against
a multi-scale STFT discriminator plus feature matching. The warm-up lets a short CPU run
learn reconstruction first. Optimization is manual: one generator
and one discriminator optimizer, stepped once each per batch. Lightning's `global_step`
counts every optimizer step, so once the discriminator is on it grows by 2 per batch
(mind `trainer.max_steps`); the warm-up and the LR schedule count generator steps.

Decoder fine-tuning (`decoder_only`, started from an export with `init_from`): the encoder
and the codebooks are frozen, so every code stays what it was and a model trained on the
codes (the S2S stage) keeps working with the better decoder. Each step decodes the codes
of `quantizer dropout`'s n_q codebooks, exactly the path that serving takes.

Evaluation logs mel distance, SI-SNR, `f0_off` (how often the voice's median F0 is lost) and,
on the test split, STOI, wide-band PESQ when installed, codebook usage and perplexity, and the
bitrate; validation writes a few audio samples and spectrograms through whatever logger is
attached (`lit.audio_samples`).

Semantic distillation (`semantic_weight` > 0, with a frozen `semantic_teacher` that maps
audio (B, T) to frame features (B, F', D)): a cosine loss from a projection of the first
codebook's quantized latent to the teacher's features (modules/semantic.py).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor, nn

from telugu_s2s.checkpoint import load_export_weights, load_pretrained
from telugu_s2s.lit.audio_samples import log_audio_samples
from telugu_s2s.metrics.audio import (
    MelDistance,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    f0_off,
    pesq_available,
    pesq_wb,
    si_snr,
    stoi,
)
from telugu_s2s.models.codec import CodecOutput
from telugu_s2s.models.codec_v2 import load_encoder_and_quantizer
from telugu_s2s.modules.discriminators import (
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from telugu_s2s.modules.quantization import code_histogram, codebook_perplexity, codebook_usage
from telugu_s2s.modules.semantic import SemanticDistillation


def warmup_cosine(step: int, warmup_steps: int, decay_steps: int | None, min_ratio: float) -> float:
    """LR multiplier: linear warm-up, then cosine down to `min_ratio` over `decay_steps` (then flat)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not decay_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, decay_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CodecModule(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        discriminator: nn.Module | None = None,
        lr: float = 3e-4,
        discriminator_lr: float | None = None,  # None = lr
        betas: tuple[float, float] = (0.8, 0.99),
        warmup_steps: int = 0,
        lr_decay_steps: int | None = None,  # None = constant after warm-up
        lr_min_ratio: float = 0.1,
        grad_clip: float | None = 1.0,
        mel_weight: float = 1.0,
        stft_weight: float = 0.0,
        waveform_weight: float = 0.1,
        commitment_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        feature_weight: float = 2.0,
        gan_loss: str = "hinge",
        adversarial_start_step: int = 0,
        num_audio_samples: int = 2,
        num_threads: int | None = None,
        init_from: str | None = None,  # an export folder (model.safetensors) to start from
        decoder_only: bool = False,  # train the decoder alone: codes stay unchanged
        speaker_consistency: float = 0.0,  # weight of 1 - cos(speaker(recon), speaker(audio))
        speaker_dir: str | None = None,  # the frozen speaker encoder of that loss
        semantic_weight: float = 0.0,  # weight of the first codebook's distillation loss
        semantic_teacher: nn.Module | None = None,  # audio (B, T) -> features (B, F', D)
        init_codes_from: str | None = None,  # an export whose encoder and codebooks to start from
    ):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net", "discriminator", "semantic_teacher"])
        self.automatic_optimization = False
        self.net = net
        if init_from:
            load_export_weights(net, init_from)
        if init_codes_from:  # e.g. a v2 decoder on the v1 codes (with decoder_only)
            load_encoder_and_quantizer(net, init_codes_from)
        if decoder_only:
            net.encoder.requires_grad_(False)
            net.quantizer.requires_grad_(False)
        self.discriminator = discriminator
        self.speaker_encoder = None
        if speaker_consistency > 0:
            self.speaker_encoder = frozen_speaker_encoder(speaker_dir, net.sample_rate)
        self.semantic = None
        if semantic_weight > 0:
            if semantic_teacher is None or decoder_only:
                raise ValueError("semantic_weight needs a semantic_teacher and a trained encoder")
            latent_dim = net.quantizer.codebooks[0].embedding_sum.shape[1]
            self.semantic = SemanticDistillation(semantic_teacher, latent_dim, net.sample_rate)
        self.mel_loss = MultiScaleMelLoss(net.sample_rate)
        self.stft_loss = MultiResolutionSTFTLoss()
        self.mel_distance = MelDistance(net.sample_rate)
        # Generator steps taken: with two optimizers Lightning's global_step counts both.
        self.register_buffer("generator_step", torch.zeros((), dtype=torch.long))
        self._histogram: Tensor | None = None  # (K, N) code counts over an evaluation epoch
        self._samples: list[tuple[Tensor, Tensor]] = []  # (reference, reconstruction) (T,) pairs

    def setup(self, stage: str) -> None:
        # On a shared CPU, one intra-op thread measured 3.6x faster per step than two: with
        # another job on the second core, two threads spin waiting for each other.
        if self.hparams.num_threads:
            torch.set_num_threads(self.hparams.num_threads)

    @property
    def adversarial(self) -> bool:
        return (
            self.discriminator is not None
            and int(self.generator_step) >= self.hparams.adversarial_start_step
        )

    # Losses.
    def reconstruction_losses(self, recon: Tensor, audio: Tensor) -> dict[str, Tensor]:
        """Differentiable reconstruction terms of recon vs audio, both (B, 1, T)."""
        losses = {"mel": self.mel_loss(recon, audio), "waveform": (recon - audio).abs().mean()}
        if self.hparams.stft_weight > 0:
            losses["stft"] = self.stft_loss(recon, audio)
        return losses

    def _discriminator_step(
        self, audio: Tensor, recon: Tensor, optimizer
    ) -> tuple[Tensor, list[list[Tensor]]]:
        """One discriminator update; returns its loss and the real features (detached).

        The generator matches these real features, taken just before this update: that
        saves a third discriminator pass per step, which is most of the cost on a CPU.
        """
        real = self.discriminator(audio)
        fake = self.discriminator(recon.detach())
        loss = discriminator_loss(real.logits, fake.logits, self.hparams.gan_loss)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(optimizer)
        optimizer.step()
        return loss.detach(), [[f.detach() for f in maps] for maps in real.features]

    def _clip(self, optimizer) -> None:
        if self.hparams.grad_clip:
            self.clip_gradients(
                optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm"
            )

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers, None) if self.discriminator is None else optimizers
        audio = batch["audio"]  # (B, 1, T)
        out = self._decode_frozen_codes(audio) if hp.decoder_only else self.net(audio)
        logs = {"train/commitment": out.commitment_loss, "train/perplexity": out.perplexity.mean()}
        adversarial = self.adversarial
        if adversarial:
            logs["train/discriminator"], real_features = self._discriminator_step(
                audio, out.audio, opt_d
            )

        terms = self.reconstruction_losses(out.audio, audio)
        loss = (
            hp.mel_weight * terms["mel"]
            + hp.waveform_weight * terms["waveform"]
            + hp.stft_weight * terms.get("stft", 0.0)
            + hp.commitment_weight * out.commitment_loss
        )
        if self.speaker_encoder is not None:
            terms["speaker"] = self.speaker_distance(out.audio, audio).mean()
            loss = loss + hp.speaker_consistency * terms["speaker"]
        if self.semantic is not None:
            terms["semantic"] = self.semantic(out.first_codebook, audio).mean()
            loss = loss + hp.semantic_weight * terms["semantic"]
        if adversarial:
            self.discriminator.requires_grad_(False)  # gradients to the generator only: cheaper
            fake = self.discriminator(out.audio)
            terms["adversarial"] = generator_adversarial_loss(fake.logits, hp.gan_loss)
            terms["feature"] = feature_matching_loss(real_features, fake.features)
            loss = (
                loss
                + hp.adversarial_weight * terms["adversarial"]
                + hp.feature_weight * terms["feature"]
            )
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self._clip(opt_g)
        opt_g.step()
        if adversarial:
            self.discriminator.requires_grad_(True)
        self.generator_step += 1
        schedulers = self._schedulers()  # [generator, discriminator]: both follow generator_step
        for scheduler in schedulers[: 2 if adversarial else 1]:
            scheduler.step()

        logs.update({f"train/{k}": v.detach() for k, v in terms.items() if k != "mel"})
        logs["train/loss"] = loss.detach()
        self.log_dict(logs, batch_size=audio.shape[0])
        self.log("train/mel", terms["mel"].detach(), prog_bar=True, batch_size=audio.shape[0])

    def speaker_distance(self, recon: Tensor, audio: Tensor) -> Tensor:
        """1 - cosine of the frozen speaker encoder's embeddings, per item (B,): who is
        speaking must survive the round trip (a speaker consistency loss, as in YourTTS)."""
        encoder = self.speaker_encoder.eval()  # BatchNorm on its running statistics, always
        with torch.no_grad():
            target = encoder(audio[:, 0])  # (B, S)
        return 1.0 - torch.nn.functional.cosine_similarity(encoder(recon[:, 0]), target, dim=-1)

    def _decode_frozen_codes(self, audio: Tensor) -> CodecOutput:
        """The decoder-only pass: codes from the frozen encoder (no EMA update), decoded."""
        quantizer = self.net.quantizer
        codes = self.net.encode(audio, quantizer.sample_num_codebooks(audio.device))  # (B, n_q, F)
        recon = self.net.decoder(quantizer.decode(codes))[..., : audio.shape[-1]]  # (B, 1, T)
        return CodecOutput(
            audio=recon, codes=codes, commitment_loss=recon.new_zeros(()),
            perplexity=codebook_perplexity(code_histogram(codes, self.net.cardinality)).to(recon),
            num_codebooks=codes.shape[1],
        )  # fmt: skip

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    # Evaluation.
    def _eval_step(self, prefix: str, batch: dict, batch_idx: int) -> None:
        audio = batch["audio"]  # (B, 1, T)
        codes = self.net.encode(audio)  # (B, K, F), all codebooks
        recon = self.net.decode(codes)[..., : audio.shape[-1]]  # (B, 1, T)
        metrics = {
            f"{prefix}/mel_distance": self.mel_distance(recon, audio).mean(),
            f"{prefix}/si_snr": si_snr(recon, audio).mean(),
            # How often the voice's pitch is lost (median F0 off by > 15%): mel distance barely
            # sees a pitch replaced by the decoder's own buzz, a listener (and a speaker ID) does.
            f"{prefix}/f0_off": f0_off(recon, audio, self.net.sample_rate).nanmean(),
        }
        if self.speaker_encoder is not None:
            metrics[f"{prefix}/speaker_distance"] = self.speaker_distance(recon, audio).mean()
        if self.semantic is not None:
            first = self.net.quantizer.codebooks[0].decode(codes[:, 0]).transpose(1, 2)
            metrics[f"{prefix}/semantic_distance"] = self.semantic(first, audio).mean()
        if prefix == "test":  # the slower perceptual metrics
            metrics[f"{prefix}/stoi"] = stoi(recon, audio, self.net.sample_rate).nanmean()
            if pesq_available():
                metrics[f"{prefix}/pesq"] = pesq_wb(recon, audio, self.net.sample_rate).nanmean()
        self.log_dict(metrics, prog_bar=True, batch_size=audio.shape[0], sync_dist=True)
        histogram = code_histogram(codes, self.net.cardinality).cpu()  # (K, N)
        self._histogram = histogram if self._histogram is None else self._histogram + histogram
        if prefix == "val" and len(self._samples) < self.hparams.num_audio_samples:
            for ref, rec in zip(audio, recon, strict=True):
                if len(self._samples) < self.hparams.num_audio_samples:
                    self._samples.append((ref[0].detach().cpu(), rec[0].detach().cpu()))

    def _eval_epoch_end(self, prefix: str) -> None:
        histogram, self._histogram = self._histogram, None
        if histogram is None:
            return
        usage, perplexity = codebook_usage(histogram), codebook_perplexity(histogram)  # (K,)
        metrics = {
            f"{prefix}/codebook_usage_min": usage.min(),
            f"{prefix}/codebook_usage_mean": usage.mean(),
            f"{prefix}/perplexity_mean": perplexity.mean(),
            f"{prefix}/bitrate": torch.tensor(float(self.net.bitrate)),
        }
        metrics.update({f"{prefix}/perplexity_{k}": p for k, p in enumerate(perplexity)})
        self.log_dict(metrics)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")
        samples, self._samples = self._samples, []
        if samples and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            log_audio_samples(self, samples)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        hp = self.hparams
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        if self.semantic is not None:  # the projection; the teacher stays frozen
            trainable += list(self.semantic.projection.parameters())
        opt_g = torch.optim.AdamW(trainable, lr=hp.lr, betas=tuple(hp.betas))

        # Keyed to generator_step (restored on resume), not to each scheduler's own count,
        # so the discriminator, which starts late, follows the same decay.
        def schedule(_: int) -> float:
            return warmup_cosine(
                int(self.generator_step), hp.warmup_steps, hp.lr_decay_steps, hp.lr_min_ratio
            )

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)]
        optimizers = [opt_g]
        if self.discriminator is not None:
            opt_d = torch.optim.AdamW(
                self.discriminator.parameters(),
                lr=hp.discriminator_lr or hp.lr,
                betas=tuple(hp.betas),
            )
            optimizers.append(opt_d)
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt_d, schedule))
        return optimizers, schedulers


def frozen_speaker_encoder(directory: str | None, sample_rate: int) -> nn.Module:
    """The exported speaker encoder, frozen, for the speaker consistency loss."""
    if not directory:
        raise ValueError("speaker_consistency needs speaker_dir (an exported speaker encoder)")
    encoder = load_pretrained(directory).requires_grad_(False)
    if encoder.sample_rate != sample_rate:
        raise ValueError(f"speaker encoder at {encoder.sample_rate} Hz, codec at {sample_rate} Hz")
    return encoder
