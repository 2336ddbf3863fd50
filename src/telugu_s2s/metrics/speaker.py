"""Speaker verification and identification metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def equal_error_rate(scores: np.ndarray, is_target: np.ndarray) -> float:
    """EER: the error rate where false acceptance equals false rejection."""
    scores, is_target = np.asarray(scores, float), np.asarray(is_target, bool)
    if is_target.all() or not is_target.any():
        raise ValueError("EER needs both target and non-target trials")
    order = np.argsort(-scores)  # accept the top-k scores, for every k
    targets = is_target[order]
    false_reject = 1.0 - np.cumsum(targets) / targets.sum()
    false_accept = np.cumsum(~targets) / (~targets).sum()
    i = int(np.argmin(np.abs(false_reject - false_accept)))
    return float((false_reject[i] + false_accept[i]) / 2)


def enrol_and_score(
    embeddings: torch.Tensor, labels: torch.Tensor, num_speakers: int
) -> dict[str, float]:
    """Split each speaker's held-out utterances in two halves: enrol the first (normalised
    mean), score the second against every enrolled voice. Returns EER and identification
    accuracy over the voices `0..num_speakers-1`."""
    embeddings = F.normalize(embeddings.float(), dim=-1)  # (N, D)
    centroids, probes, probe_labels = [], [], []
    for k in range(num_speakers):
        rows = embeddings[labels == k]  # (M, D)
        if rows.shape[0] < 2:
            raise ValueError(
                f"speaker {k} needs at least 2 held-out utterances, has {rows.shape[0]}"
            )
        half = rows.shape[0] // 2
        centroids.append(F.normalize(rows[:half].mean(0), dim=0))
        probes.append(rows[half:])
        probe_labels += [k] * (rows.shape[0] - half)
    scores = torch.cat(probes) @ torch.stack(centroids).T  # (P, K)
    truth = torch.tensor(probe_labels)  # (P,)
    is_target = F.one_hot(truth, num_speakers).bool()  # (P, K)
    return {
        "eer": equal_error_rate(scores.flatten().numpy(), is_target.flatten().numpy()),
        "accuracy": float((scores.argmax(1) == truth).float().mean()),
    }


def projection_plot(embeddings: torch.Tensor, labels: torch.Tensor, names: list[str], path) -> None:
    """Save a 2-D PCA projection of unit-norm embeddings, one colour per voice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emb = F.normalize(embeddings.float(), dim=-1)  # (N, D)
    emb = emb - emb.mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(emb, q=2, center=False)
    points = (emb @ v[:, :2]).numpy()  # (N, 2)
    fig, ax = plt.subplots(figsize=(5, 5))
    for k, name in enumerate(names):
        sel = (labels == k).numpy()
        if sel.any():
            ax.scatter(points[sel, 0], points[sel, 1], s=8, label=name)
    ax.set_title("speaker embeddings (PCA)")
    ax.legend(fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
