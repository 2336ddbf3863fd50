"""SpeakerBank registry, its files on disk, and the `python -m telugu_s2s.speakers` CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.data.voices import (
    ASSISTANT_VOICES,
    VoiceSpec,
    load_synth_config,
    render,
    voices_from_config,
)
from telugu_s2s.models.speaker import SpeakerEncoder, SpeakerEncoderConfig
from telugu_s2s.modules.features import MelConfig
from telugu_s2s.paths import REPO_ROOT
from telugu_s2s.speakers import (
    BANK_META,
    BANK_WEIGHTS,
    SpeakerBank,
    SpeakerMetadata,
    embed_audio,
    enroll_audio,
    load_voice_metadata,
)
from telugu_s2s.speakers.cli import main

torch.set_num_threads(1)
DIM = 16
SENTENCES = ("నమస్కారం, మీరు ఎలా ఉన్నారు?", "ఈ రోజు వాతావరణం చాలా బాగుంది.", "నాకు తెలుగు పాటలు ఇష్టం.")


def clustered(centre: torch.Tensor, n: int, spread: float = 0.1) -> torch.Tensor:
    return F.normalize(centre + spread * torch.randn(n, centre.shape[0]), dim=-1)  # (n, D)


@pytest.fixture
def bank() -> SpeakerBank:
    torch.manual_seed(0)
    bank = SpeakerBank(DIM, encoder_fingerprint="abc")
    for name, meta in load_voice_metadata().items():
        bank.enroll(name, clustered(torch.randn(DIM), 5), meta)
    return bank


def test_conf_speakers_yaml_describes_the_four_voices() -> None:
    voices = load_voice_metadata()
    assert list(voices) == ["arjun", "ravi", "priya", "lakshmi"]
    assert voices["arjun"] == SpeakerMetadata("Arjun", "male", "young", "25-30", "energetic", 120.0)
    assert voices["ravi"] == SpeakerMetadata(
        "Ravi", "male", "mature", "35-45", "authoritative", 100.0
    )
    assert voices["priya"] == SpeakerMetadata(
        "Priya", "female", "young", "22-28", "expressive", 220.0
    )
    assert voices["lakshmi"] == SpeakerMetadata(
        "Lakshmi", "female", "professional", "30-40", "clear", 190.0
    )


def test_enroll_stores_the_normalised_mean_and_identify_finds_it(bank: SpeakerBank) -> None:
    utterances = torch.randn(3, DIM)
    stored = bank.enroll("meera", utterances, {"display_name": "Meera", "gender": "female"})
    expected = F.normalize(F.normalize(utterances, dim=-1).mean(dim=0), dim=0)
    torch.testing.assert_close(stored, expected)
    assert bank.names[-1] == "meera" and bank.num_utterances("meera") == 3
    assert bank.metadata("meera").gender == "female"
    for name in bank.names:
        probe = clustered(bank.embedding(name), 1, spread=0.05)[0]
        found, score = bank.identify(probe)
        assert found == name and score > 0.9
    scores = bank.scores(torch.randn(7, DIM))
    assert scores.shape == (7, 5) and scores.abs().max() <= 1.0 + 1e-6


def test_bank_errors_are_clear(bank: SpeakerBank) -> None:
    with pytest.raises(KeyError, match="unknown speaker 'nobody'"):
        bank.embedding("nobody")
    with pytest.raises(ValueError, match="embedding dim 8 != bank dim 16"):
        bank.enroll("meera", torch.randn(2, 8))
    with pytest.raises(ValueError, match="M >= 1"):
        bank.enroll("meera", torch.empty(0, DIM))
    with pytest.raises(ValueError, match="NaN"):
        bank.enroll("meera", torch.full((1, DIM), float("nan")))
    with pytest.raises(ValueError, match="invalid speaker name"):
        bank.enroll("Meera Devi", torch.randn(1, DIM))
    with pytest.raises(ValueError, match="unknown speaker metadata keys"):
        bank.enroll("meera", torch.randn(1, DIM), {"colour": "blue"})
    with pytest.raises(ValueError, match="empty"):
        SpeakerBank(DIM).identify(torch.randn(DIM))
    assert "meera" not in bank  # failed enrolments leave nothing behind


def test_save_load_round_trip_is_exact(bank: SpeakerBank, tmp_path) -> None:
    bank.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {BANK_WEIGHTS, BANK_META}  # no temp files left
    loaded = SpeakerBank.load(tmp_path)
    assert loaded.names == bank.names
    assert loaded.encoder_fingerprint == "abc" and loaded.embedding_dim == DIM
    assert torch.equal(loaded.embeddings, bank.embeddings)
    for name in bank.names:
        assert loaded.metadata(name) == bank.metadata(name)
        assert loaded.num_utterances(name) == bank.num_utterances(name)


def test_load_detects_mismatched_files(bank: SpeakerBank, tmp_path) -> None:
    bank.save(tmp_path / "a")
    bank.enroll("arjun", torch.randn(2, DIM))  # same names, new embedding
    bank.save(tmp_path / "b")
    os.replace(tmp_path / "b" / BANK_WEIGHTS, tmp_path / "a" / BANK_WEIGHTS)  # a torn write
    with pytest.raises(ValueError, match="do not match"):
        SpeakerBank.load(tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="no speaker bank"):
        SpeakerBank.load(tmp_path / "missing")


def test_bank_loads_without_lightning(bank: SpeakerBank, tmp_path) -> None:
    bank.save(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from telugu_s2s.speakers import SpeakerBank
        bank = SpeakerBank.load({str(tmp_path)!r})
        assert bank.names == {bank.names!r}, bank.names
        assert "lightning" not in sys.modules
        assert "pytorch_lightning" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


# ---------------------------------------------------------------- with a real encoder


def tiny_encoder() -> SpeakerEncoder:
    torch.manual_seed(0)
    cfg = SpeakerEncoderConfig(
        mel=MelConfig(n_mels=24, pad_mode="constant"), channels=32, se_channels=8,
        mfa_channels=48, attention_channels=16, embedding_dim=DIM,
    )  # fmt: skip
    return SpeakerEncoder(cfg).eval()


@pytest.fixture(scope="module")
def new_voice_wavs(tmp_path_factory) -> list:
    """Renders of a voice unlike the corpus voices, written as 22.05 kHz WAVs (resampled on load)."""
    folder = tmp_path_factory.mktemp("wavs")
    voice = VoiceSpec("meera", "te+f3", pitch=40, range=60, rate=140, role="user")
    paths = []
    for i, text in enumerate(SENTENCES):
        audio, raw = render(text, voice, sample_rate=22050)
        paths.append(folder / f"meera_{i}.wav")
        sf.write(paths[-1], audio, 22050)
    return paths


def test_enroll_audio_refuses_a_different_encoder(new_voice_wavs) -> None:
    encoder = tiny_encoder()
    clips = [sf.read(p, dtype="float32")[0] for p in new_voice_wavs]
    bank = SpeakerBank(DIM)
    enroll_audio(bank, encoder, "meera", clips[:2])
    assert bank.identify(embed_audio(encoder, clips[2:])[0])[0] == "meera"
    other = tiny_encoder()
    with torch.no_grad():
        other.head.bias.add_(1.0)
    with pytest.raises(ValueError, match="not comparable"):
        enroll_audio(bank, other, "ravi", clips)


@pytest.fixture
def checkpoint(tmp_path):
    directory = tmp_path / "speaker"
    save_pretrained(tiny_encoder(), directory)
    return directory


def test_cli_enroll_then_list(checkpoint, new_voice_wavs, capsys) -> None:
    assert main(["enroll", "Meera", *map(str, new_voice_wavs), "--checkpoint", str(checkpoint),
                 "--gender", "female", "--age", "30-35", "--style", "warm"]) == 0  # fmt: skip
    assert "enrolled 'meera' (Meera) from 3 utterances" in capsys.readouterr().out
    bank = SpeakerBank.load(checkpoint)
    assert bank.names == ["meera"]
    meta = bank.metadata("meera")
    assert (meta.gender, meta.age, meta.style) == ("female", "30-35", "warm")
    assert meta.pitch_hz is not None and 80 < meta.pitch_hz < 400  # measured, not given

    # `list` through the real module entry point.
    listing = subprocess.run(
        [sys.executable, "-m", "telugu_s2s.speakers", "list", "--bank", str(checkpoint)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "1 voices" in listing.stdout
    row = next(line for line in listing.stdout.splitlines() if line.startswith("meera"))
    assert row.split()[:6] == ["meera", "Meera", "female", "-", "30-35", "warm"]


def test_cli_bad_input_fails_cleanly_and_keeps_the_bank(
    checkpoint, new_voice_wavs, tmp_path, capsys
) -> None:
    assert main(["enroll", "meera", str(new_voice_wavs[0]), "--checkpoint", str(checkpoint)]) == 0
    stored = {name: (checkpoint / name).read_bytes() for name in (BANK_WEIGHTS, BANK_META)}
    capsys.readouterr()

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(800, dtype=np.float32) + 0.1, 16000)
    cases = {
        "no such file": [str(new_voice_wavs[1]), str(tmp_path / "missing.wav")],
        "not a readable audio file": [str(new_voice_wavs[1]), str(not_audio)],
        "shorter than": [str(short)],
        "already in the bank": [str(new_voice_wavs[1])],
    }
    for expected, wavs in cases.items():
        name = "meera" if expected == "already in the bank" else "lakshmi2"
        assert main(["enroll", name, *wavs, "--checkpoint", str(checkpoint)]) == 1
        assert expected in capsys.readouterr().err
        for file, content in stored.items():
            assert (checkpoint / file).read_bytes() == content, f"{expected}: {file} changed"

    assert (
        main(["enroll", "x", str(new_voice_wavs[0]), "--checkpoint", str(tmp_path / "none")]) == 1
    )
    assert "no speaker encoder checkpoint" in capsys.readouterr().err
    assert main(["list", "--bank", str(tmp_path / "none")]) == 1
    assert "no speaker bank" in capsys.readouterr().err


# ---------------------------------------------------------------- acceptance (trained encoder)

TRAINED = REPO_ROOT / "checkpoints" / "speaker"


@pytest.mark.slow
@pytest.mark.skipif(
    not (TRAINED / "config.json").exists() or not SpeakerBank.exists(TRAINED),
    reason="needs the trained speaker encoder and its bank in checkpoints/speaker (stage=speaker)",
)
def test_trained_encoder_matches_a_newly_enrolled_voice() -> None:
    """Enroll a fifth voice the encoder never saw; new utterances still go to the right voice."""
    encoder, bank = load_pretrained(TRAINED), SpeakerBank.load(TRAINED)
    assert set(ASSISTANT_VOICES) <= set(bank.names)
    # espeak variant m8 is used by no corpus voice (conf/synth.yaml).
    unseen = VoiceSpec("vikram", "te+m8", pitch=40, range=50, rate=150, role="user")
    enrolment = (*SENTENCES, "మా ఊరిలో పెద్ద గుడి ఉంది, అక్కడ ప్రతి ఏటా జాతర జరుగుతుంది.")
    enroll_audio(bank, encoder, "vikram", [render(text, unseen)[0] for text in enrolment])

    voices = voices_from_config(load_synth_config())
    held_out = ("రేపు మనం మార్కెట్‌కి వెళ్దాం.", "మీకు ఏ సినిమా ఇష్టం? నేను ఈ వారం కొత్త సినిమా చూశాను.")
    for name, voice in [("vikram", unseen), *((n, voices[n]) for n in ASSISTANT_VOICES)]:
        embeddings = embed_audio(encoder, [render(text, voice)[0] for text in held_out])  # (2, D)
        assert [bank.identify(e)[0] for e in embeddings] == [name, name]
