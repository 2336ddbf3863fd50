"""Validation audio samples of the codec stage: (reference, reconstruction) pairs and their
log-mel spectrograms, sent to every attached logger (wandb, TensorBoard, else files)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from torch import Tensor


def spectrogram_image(reference: Tensor, reconstruction: Tensor, sample_rate: int) -> np.ndarray:
    """Log-mel spectrograms of reference (top) and reconstruction (bottom), an (H, W, 3) uint8 image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from telugu_s2s.modules.features import MelSpectrogram

    mel = MelSpectrogram(sample_rate=sample_rate, n_fft=1024, hop_length=256, win_length=1024)
    fig, axes = plt.subplots(2, 1, figsize=(6, 4), sharex=True)
    for ax, audio, title in zip(
        axes, (reference, reconstruction), ("reference", "reconstruction"), strict=True
    ):
        ax.imshow(mel(audio.float()).numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=2.0)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)
    plt.close(fig)
    return image


def log_audio_samples(module: L.LightningModule, samples: list[tuple[Tensor, Tensor]]) -> None:
    """Send (reference, reconstruction) pairs to every logger: wandb, TensorBoard, else files."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    trainer, sample_rate, epoch = module.trainer, module.net.sample_rate, module.current_epoch
    images = [spectrogram_image(ref, rec, sample_rate) for ref, rec in samples]
    wrote_files = False
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log(
                {
                    "samples/audio": [
                        wandb.Audio(rec.numpy(), sample_rate=sample_rate) for _, rec in samples
                    ],
                    "samples/spectrogram": [wandb.Image(image) for image in images],
                    "trainer/global_step": trainer.global_step,
                }
            )
        elif isinstance(logger, TensorBoardLogger):
            for i, ((_, rec), image) in enumerate(zip(samples, images, strict=True)):
                logger.experiment.add_audio(f"samples/audio_{i}", rec[None], epoch, sample_rate)
                logger.experiment.add_image(
                    f"samples/spectrogram_{i}", image, epoch, dataformats="HWC"
                )
        elif not wrote_files:  # CSV or anything else: files under the run directory
            _write_sample_files(
                Path(trainer.default_root_dir) / "samples", epoch, samples, images, sample_rate
            )
            wrote_files = True


def _write_sample_files(directory: Path, epoch: int, samples, images, sample_rate: int) -> None:
    import matplotlib.pyplot as plt
    import soundfile as sf

    directory.mkdir(parents=True, exist_ok=True)
    for i, ((ref, rec), image) in enumerate(zip(samples, images, strict=True)):
        reference = directory / f"sample{i}_reference.wav"
        if not reference.exists():
            sf.write(reference, ref.numpy(), sample_rate)
        stem = directory / f"epoch{epoch:03d}_sample{i}"
        sf.write(f"{stem}_reconstruction.wav", rec.clamp(-1, 1).numpy(), sample_rate)
        plt.imsave(f"{stem}_spectrogram.png", image)
