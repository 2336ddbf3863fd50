"""The named speaker bank (CLI: `python -m telugu_s2s.speakers list | enroll NAME wav...`).

A `SpeakerBank` maps voice names (arjun, ravi, priya, lakshmi, and any enrolled later) to
metadata and one unit-norm embedding each: the normalised mean of the speaker encoder's
embeddings over that voice's utterances. It is saved beside the encoder checkpoint as
`speaker_bank.safetensors` + `speaker_bank.yaml` and loads without Lightning (the server
uses it). The bank records a fingerprint of the encoder whose embedding space it lives in,
so voices embedded by different encoders are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from telugu_s2s.checkpoint import atomic_write, weights_fingerprint
from telugu_s2s.paths import CONFIG_DIR

BANK_WEIGHTS = "speaker_bank.safetensors"
BANK_META = "speaker_bank.yaml"
BANK_FORMAT = 1
SPEAKERS_CONFIG = CONFIG_DIR / "speakers.yaml"
DEFAULT_CHECKPOINT = Path("checkpoints/speaker")
MIN_SECONDS = 0.5  # shorter clips give unreliable embeddings
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass
class SpeakerMetadata:
    display_name: str | None = None
    gender: str | None = None
    persona: str | None = None  # character descriptor: young, mature, professional...
    age: str | None = None  # apparent age range, e.g. "25-30"
    style: str | None = None  # energetic, authoritative, expressive, clear...
    pitch_hz: float | None = None  # target (or measured) median F0

    @classmethod
    def from_dict(cls, values: dict) -> SpeakerMetadata:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown speaker metadata keys {sorted(unknown)}; known: {sorted(known)}"
            )
        out = cls(**values)
        out.pitch_hz = None if out.pitch_hz is None else float(out.pitch_hz)
        out.age = None if out.age is None else str(out.age)
        return out


def load_voice_metadata(path: str | Path = SPEAKERS_CONFIG) -> dict[str, SpeakerMetadata]:
    """Metadata of the assistant voices from conf/speakers.yaml, in file order."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["speakers"]
    return {validate_name(name): SpeakerMetadata.from_dict(meta) for name, meta in entries.items()}


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid speaker name {name!r}: use 1-32 lower-case letters, digits, '_' or '-'"
        )
    return name


def encoder_fingerprint(encoder: nn.Module) -> str:
    """A short hash of the encoder's weights: identifies the embedding space of a bank."""
    return weights_fingerprint(encoder.state_dict())


class SpeakerBank:
    """Named voices -> metadata + one unit-norm embedding (D,) each."""

    def __init__(self, embedding_dim: int, encoder_fingerprint: str | None = None):
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        self.embedding_dim = embedding_dim
        self.encoder_fingerprint = encoder_fingerprint
        self._embeddings: dict[str, torch.Tensor] = {}  # name -> (D,)
        self._metadata: dict[str, SpeakerMetadata] = {}
        self._num_utterances: dict[str, int] = {}

    @property
    def names(self) -> list[str]:
        return list(self._embeddings)

    def __len__(self) -> int:
        return len(self._embeddings)

    def __contains__(self, name: str) -> bool:
        return name in self._embeddings

    @property
    def embeddings(self) -> torch.Tensor:
        """All embeddings (N, D), rows in `names` order."""
        if not self._embeddings:
            return torch.empty(0, self.embedding_dim)
        return torch.stack(list(self._embeddings.values()))  # (N, D)

    def _check_known(self, name: str) -> None:
        if name not in self._embeddings:
            raise KeyError(f"unknown speaker {name!r}; the bank has {self.names or 'no voices'}")

    def embedding(self, name: str) -> torch.Tensor:
        self._check_known(name)
        return self._embeddings[name].clone()  # (D,)

    def metadata(self, name: str) -> SpeakerMetadata:
        self._check_known(name)
        return self._metadata[name]

    def num_utterances(self, name: str) -> int:
        self._check_known(name)
        return self._num_utterances[name]

    def _as_rows(self, embeddings: torch.Tensor, what: str) -> torch.Tensor:
        embeddings = torch.as_tensor(embeddings).detach().float().cpu()
        if embeddings.dim() == 1:
            embeddings = embeddings[None]  # (1, D)
        if embeddings.dim() != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"{what}: expected (M, D) with M >= 1, got {tuple(embeddings.shape)}")
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"{what}: embedding dim {embeddings.shape[1]} != bank dim {self.embedding_dim}"
            )
        if not torch.isfinite(embeddings).all():
            raise ValueError(f"{what}: embeddings contain NaN or inf")
        if (embeddings.norm(dim=-1) < 1e-8).any():
            raise ValueError(f"{what}: zero embedding")
        return embeddings  # (M, D)

    def enroll(
        self,
        name: str,
        embeddings: torch.Tensor,
        metadata: SpeakerMetadata | dict | None = None,
    ) -> torch.Tensor:
        """Store (or replace) `name` as the normalised mean of its utterance embeddings (M, D)."""
        validate_name(name)
        rows = F.normalize(self._as_rows(embeddings, f"enroll {name!r}"), dim=-1)  # (M, D)
        mean = rows.mean(dim=0)  # (D,)
        if mean.norm() < 1e-6:
            raise ValueError(f"enroll {name!r}: utterance embeddings cancel out")
        if isinstance(metadata, dict):
            metadata = SpeakerMetadata.from_dict(metadata)
        self._embeddings[name] = F.normalize(mean, dim=0)
        self._metadata[name] = metadata or SpeakerMetadata(display_name=name.capitalize())
        self._num_utterances[name] = rows.shape[0]
        return self._embeddings[name].clone()

    def scores(self, embedding: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of embedding (D,) or (B, D) to every voice -> (N,) or (B, N)."""
        if not self._embeddings:
            raise ValueError("the speaker bank is empty")
        single = torch.as_tensor(embedding).dim() == 1
        rows = F.normalize(self._as_rows(embedding, "scores"), dim=-1)  # (B, D)
        scores = rows @ self.embeddings.T  # (B, N)
        return scores[0] if single else scores

    def identify(self, embedding: torch.Tensor) -> tuple[str, float]:
        """The closest voice to embedding (D,) and its cosine score."""
        if torch.as_tensor(embedding).dim() != 1:
            raise ValueError("identify takes one embedding (D,); use scores() for a batch")
        scores = self.scores(embedding)  # (N,)
        best = int(scores.argmax())
        return self.names[best], float(scores[best])

    def save(self, directory: str | Path) -> Path:
        """Write speaker_bank.safetensors + speaker_bank.yaml into `directory`, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        embeddings = self.embeddings.contiguous()  # (N, D)
        meta = {
            "format": BANK_FORMAT,
            "embedding_dim": self.embedding_dim,
            "encoder_fingerprint": self.encoder_fingerprint,
            # Ties the YAML to the tensor file: a torn pair of writes is detected on load.
            "embeddings_sha256": hashlib.sha256(embeddings.numpy().tobytes()).hexdigest(),
            "speakers": {
                name: {**asdict(self._metadata[name]), "num_utterances": self._num_utterances[name]}
                for name in self.names
            },
        }
        tensor_meta = {"names": json.dumps(self.names), "format": str(BANK_FORMAT)}
        atomic_write(
            directory / BANK_WEIGHTS,
            lambda p: save_file({"embeddings": embeddings}, str(p), metadata=tensor_meta),
        )
        atomic_write(
            directory / BANK_META,
            lambda p: p.write_text(
                yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8"
            ),
        )
        return directory

    @staticmethod
    def exists(directory: str | Path) -> bool:
        return (Path(directory) / BANK_META).exists() or (Path(directory) / BANK_WEIGHTS).exists()

    @classmethod
    def load(cls, directory: str | Path) -> SpeakerBank:
        directory = Path(directory)
        for file in (BANK_META, BANK_WEIGHTS):
            if not (directory / file).exists():
                raise FileNotFoundError(f"no speaker bank in {directory}: {file} is missing")
        try:
            meta = yaml.safe_load((directory / BANK_META).read_text(encoding="utf-8"))
            embeddings = load_file(str(directory / BANK_WEIGHTS))["embeddings"]  # (N, D)
        except Exception as exc:  # YAML, safetensors and UTF-8 errors share no base class
            raise ValueError(f"{directory}: unreadable speaker bank ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != BANK_FORMAT:
            raise ValueError(f"{directory / BANK_META}: not a speaker bank of format {BANK_FORMAT}")
        names = list(meta["speakers"] or {})
        digest = hashlib.sha256(embeddings.contiguous().numpy().tobytes()).hexdigest()
        if (
            embeddings.shape != (len(names), meta["embedding_dim"])
            or digest != meta["embeddings_sha256"]
        ):
            raise ValueError(f"{directory}: {BANK_META} and {BANK_WEIGHTS} do not match")
        bank = cls(meta["embedding_dim"], meta.get("encoder_fingerprint"))
        for name, row in zip(names, embeddings, strict=True):
            entry = dict(meta["speakers"][name])
            bank._embeddings[validate_name(name)] = row.clone()
            bank._num_utterances[name] = int(entry.pop("num_utterances"))
            bank._metadata[name] = SpeakerMetadata.from_dict(entry)
        return bank


# ---------------------------------------------------------------- audio -> embeddings


class AudioError(ValueError):
    pass


def load_audio(
    path: str | Path, sample_rate: int = 16000, min_seconds: float = MIN_SECONDS
) -> np.ndarray:
    """Read an audio file as mono float32 (T,) at `sample_rate`; AudioError says what is wrong."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        audio, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
    except Exception as exc:  # soundfile raises LibsndfileError or RuntimeError variants
        raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    audio = audio.mean(axis=1)  # (T,)
    if file_rate != sample_rate:
        audio = soxr.resample(audio, file_rate, sample_rate, quality="HQ").astype(np.float32)
    if audio.shape[0] < min_seconds * sample_rate:
        raise AudioError(
            f"{path}: {audio.shape[0] / sample_rate:.2f} s is shorter than {min_seconds} s"
        )
    if not np.isfinite(audio).all() or np.abs(audio).max() < 1e-4:
        raise AudioError(f"{path}: silent or corrupt audio")
    return audio


@torch.inference_mode()
def embed_audio(
    encoder: nn.Module, clips: Sequence[np.ndarray | torch.Tensor], batch_size: int = 8
) -> torch.Tensor:
    """Embed mono clips (each (T_i,), at the encoder's rate) -> unit-norm embeddings (M, D)."""
    if len(clips) == 0:
        raise ValueError("no audio clips to embed")
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        out = []
        for start in range(0, len(clips), batch_size):
            batch = [
                torch.as_tensor(c, dtype=torch.float32).reshape(-1)
                for c in clips[start : start + batch_size]
            ]
            lengths = torch.tensor([c.shape[0] for c in batch])  # (B,)
            padded = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True)  # (B, T_max)
            out.append(encoder(padded.to(device), lengths.to(device)).cpu())  # (B, D)
        return torch.cat(out)  # (M, D)
    finally:
        encoder.train(was_training)


def enroll_audio(
    bank: SpeakerBank,
    encoder: nn.Module,
    name: str,
    clips: Sequence[np.ndarray | torch.Tensor],
    metadata: SpeakerMetadata | dict | None = None,
) -> torch.Tensor:
    """Embed `clips` and enroll them as `name`; checks that `encoder` is the bank's encoder."""
    bind_encoder(bank, encoder)
    return bank.enroll(name, embed_audio(encoder, clips), metadata)


def bind_encoder(bank: SpeakerBank, encoder: nn.Module) -> None:
    """Tie an empty bank to `encoder`, or check that `encoder` is the one the bank was built with."""
    fingerprint = encoder_fingerprint(encoder)
    if bank.encoder_fingerprint is None and len(bank) == 0:
        bank.encoder_fingerprint = fingerprint
    elif bank.encoder_fingerprint != fingerprint:
        raise ValueError(
            f"the bank was built with encoder {bank.encoder_fingerprint}, not {fingerprint}: "
            "embeddings from different encoders are not comparable"
        )
