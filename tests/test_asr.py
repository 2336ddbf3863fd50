"""The recognizer (judge): CTC model, channel augmentation, the transcribe command."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from telugu_s2s.checkpoint import load_pretrained, save_pretrained
from telugu_s2s.data.augment import band_limit, channel_augment, reverberate
from telugu_s2s.data.text import BLANK, TextTokenizer
from telugu_s2s.models.asr import AsrConfig, AsrModel
from telugu_s2s.modules.feature_augment import FrequencyWarp, MelAxisWarp, mel_centers_hz
from telugu_s2s.modules.features import MelConfig

TINY = AsrConfig(conv_channels=32, hidden=32, layers=1, dropout=0.0)


def test_output_lengths_and_padding_do_not_change_a_clip():
    torch.manual_seed(0)
    model = AsrModel(TINY).eval()
    short, long = torch.randn(12000) * 0.1, torch.randn(20000) * 0.1
    alone, alone_len = model(short[None], torch.tensor([12000]))
    audio = torch.nn.utils.rnn.pad_sequence([long, short], batch_first=True)
    both, both_len = model(audio, torch.tensor([20000, 12000]))
    assert alone_len.item() == both_len[1].item() == alone.shape[1]
    assert torch.allclose(alone[0], both[1, : alone.shape[1]], atol=1e-4)

    # read 1.25 times slower (the judge's tempo normalisation): longer, and still unpadded
    def stretched(clips, lengths):
        features = model.features(clips, lengths)
        return model.encode(features, model.mel.num_frames(lengths), time_stretch=1.25)

    slow, slow_len = stretched(short[None], torch.tensor([12000]))
    both_slow, both_slow_len = stretched(audio, torch.tensor([20000, 12000]))
    assert slow_len.item() == both_slow_len[1].item() == slow.shape[1]
    assert abs(slow_len.item() - 1.25 * alone_len.item()) <= 2
    assert torch.allclose(slow[0], both_slow[1, : slow.shape[1]], atol=1e-4)


def test_ctc_training_learns_two_utterances():
    torch.manual_seed(0)
    model = AsrModel(TINY)
    tok = TextTokenizer()
    texts = ["నమస్కారం", "వర్షం"]
    t = torch.arange(16000) / 16000
    # Rising and falling chirps: each frame is distinct, as in speech.
    audio = torch.stack([torch.sin(2 * torch.pi * (200 + 900 * t) * t),
                         torch.sin(2 * torch.pi * (2000 - 900 * t) * t)]) * 0.3  # fmt: skip
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(tok.encode(x)) for x in texts], True)
    target_lengths = torch.tensor([len(tok.encode(x)) for x in texts])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        log_probs, lengths = model(audio, torch.tensor([16000, 16000]))
        loss = F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=BLANK)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert model.transcribe(list(audio)) == texts
    # Decoded at several vocal-tract factors, the most confident reading is kept: a halved
    # mel axis alone reads neither chirp, but beside the unwarped reading it is passed over.
    assert model.transcribe(list(audio), warps=(0.5,)) != texts
    assert model.transcribe(list(audio), warps=(0.5, 1.0)) == texts
    # With consensus over readings, one outlying reading is passed over too.
    assert model.transcribe(list(audio), warps=(0.5, 1.0, 1.0), consensus=3) == texts


def test_consensus_keeps_the_reading_nearest_the_others():
    from telugu_s2s.models.asr import _consensus

    # The first (most confident) reading alone misreads a letter that the others agree on.
    assert _consensus(["మాగురి వచ్చింది", "మాధురి వచ్చింది", "మాధురి వచ్చింది"]) == "మాధురి వచ్చింది"
    assert _consensus(["రవి", "రవీ"]) == "రవి"  # a tie keeps the more confident
    assert _consensus(["ఒకటి"]) == "ఒకటి"


def test_the_stage_goes_on_from_an_export_of_the_same_config_only(tmp_path):
    from telugu_s2s.lit.asr_module import AsrModule

    torch.manual_seed(0)
    save_pretrained(AsrModel(TINY), tmp_path, dtype="float16")
    module = AsrModule(AsrModel(TINY), init_from=str(tmp_path))
    fresh = AsrModel(TINY).state_dict()  # another draw of the weights
    for name, value in load_pretrained(tmp_path).state_dict().items():  # fp16, cast back
        assert torch.equal(module.net.state_dict()[name], value), name
        assert not torch.equal(fresh[name], value) or value.unique().numel() == 1, name
    with pytest.raises(ValueError, match="config differs"):
        AsrModule(
            AsrModel(AsrConfig(conv_channels=16, hidden=32, layers=1)), init_from=str(tmp_path)
        )


def test_frequency_warp_moves_formants_by_the_drawn_factor_and_keeps_time():
    mel = MelConfig(n_mels=80)
    centers = mel_centers_hz(mel)  # (M,)
    x = torch.zeros(2, 80, 30)  # (B, M, F): a "formant" at 1 kHz, silent frames at the end
    band = int(torch.argmin((centers - 1000).abs()))
    x[:, band - 1 : band + 2, :20] = 1.0
    up = FrequencyWarp(mel, prob=1.0, global_range=(1.2, 1.2), local=0.0)(x)
    down = FrequencyWarp(mel, prob=1.0, global_range=(0.8, 0.8), local=0.0)(x)
    peak = lambda y: float(centers[int(y[0, :, 0].argmax())])  # noqa: E731
    assert abs(peak(up) - 1200) < 60 and abs(peak(down) - 800) < 60
    assert torch.all(up[:, :, 20:] == 0) and torch.all(down[:, :, 20:] == 0)  # no leak in time
    assert torch.equal(FrequencyWarp(mel, prob=0.0)(x), x)
    fixed = MelAxisWarp(mel, 1.2)(x)  # the decoding warp: one factor for every clip
    assert abs(peak(fixed) - 1200) < 60 and torch.all(fixed[:, :, 20:] == 0)
    assert torch.allclose(MelAxisWarp(mel, 1.0)(x), x)
    # Random local warps stay monotone: the source bins never go backwards.
    source = FrequencyWarp(mel, local=0.3).source_bins(16)  # (B, M)
    assert torch.all(source.diff(dim=1) >= 0) and source.min() >= 0 and source.max() <= 79


def test_channel_augmentation():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    tones = torch.sin(2 * torch.pi * 200 * t) + torch.sin(2 * torch.pi * 5000 * t)
    limited = band_limit(tones, 300.0, 3400.0, 16000)
    spectrum = torch.fft.rfft(limited).abs()
    assert spectrum[5000] < 0.01 * spectrum.max() and spectrum[200] < 0.01 * spectrum.max()
    wet = reverberate(tones, 0.5, 0.5, 16000, g)
    assert wet.shape == tones.shape and not torch.allclose(wet, tones)
    a = channel_augment(tones * 0.3, 16000, torch.Generator().manual_seed(3))
    b = channel_augment(tones * 0.3, 16000, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().max() <= 1.0


def test_transcribe_command_prints_one_line_per_file_and_reports_bad_files(tmp_path):
    torch.manual_seed(0)
    export = save_pretrained(AsrModel(TINY), tmp_path / "asr")
    good = tmp_path / "a.wav"
    sf.write(
        good, (np.random.default_rng(0).standard_normal(22050) * 0.1).astype(np.float32), 22050
    )
    flac = tmp_path / "b.flac"
    sf.write(flac, np.zeros(8000, np.float32), 8000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    cmd = [sys.executable, "-m", "telugu_s2s.asr", "transcribe", "--model", str(export)]
    out = subprocess.run([*cmd, str(good), str(flac)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(good), str(flac)]
    out = subprocess.run([*cmd, str(bad), str(good), str(tmp_path / "missing.wav")],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1
    assert (
        "bad.wav: not a readable audio file" in out.stderr
        and "missing.wav: no such file" in out.stderr
    )
    assert out.stdout.splitlines()[0].startswith(str(good))
