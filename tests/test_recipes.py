"""Each corpus recipe on a tiny fixture laid out like the real download: the rows, splits,
speakers and audio it writes, in the dataset schema the training stages read; and the GPU
S2S recipe's stages compose."""

from __future__ import annotations

import io

import datasets as hfd
import numpy as np
import pytest
import soundfile as sf

from telugu_s2s.data.datasets import CodecCrops, decode_audio, load_split
from telugu_s2s.data.synth import features
from telugu_s2s.recipes import Utterance, speaker_split, write_dataset
from telugu_s2s.recipes.__main__ import main as prepare
from telugu_s2s.recipes.corpora import CORPORA

TEXT = "నమస్కారం మీరు ఎలా ఉన్నారు"


def tone(seconds: float, rate: int, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write(path, seconds=1.0, rate=22050, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(seconds, rate), rate, format=fmt)


def make_indictts(root):
    for gender in ("female", "male"):
        lines = []
        for i in range(1, 4):
            utt = f"train_telugu{gender}_{i:05d}"
            write(root / "Telugu" / gender / "wav" / f"{utt}.wav", rate=48000)
            lines.append(f'( {utt} "{TEXT} {i}" )')
        lines.append('( train_telugumale_99999 "no audio for this prompt" )')
        (root / "Telugu" / gender / "txt.done.data").write_text("\n".join(lines) + "\n")
    return 6  # utterances with audio


def make_openslr66(root):
    n = 0
    for folder, prefix in (("te_in_female", "tef"), ("te_in_male", "tem")):
        lines = []
        for speaker in range(1, 9):
            utt = f"{prefix}_{speaker:05d}_{1000 + speaker:011d}"
            write(root / folder / f"{utt}.wav", rate=48000)
            lines.append(f"{utt}\t{TEXT}")
            n += 1
        (root / folder / "line_index.tsv").write_text("\n".join(lines) + "\n")
    return n


def make_common_voice(root):
    folder = root / "cv-corpus-17.0-2024-03-15" / "te"
    header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"  # fmt: skip
    for split, clients in (("train", "ab"), ("dev", "c"), ("test", "d")):
        rows = [header]
        for j, client in enumerate(clients):
            clip = f"common_voice_te_{split}_{j}.mp3"
            write(folder / "clips" / clip, rate=48000, fmt="MP3")
            rows.append(f'{client * 64}\t{clip}\tsid\t{TEXT} "{split}"\t\t2\t0\t\t\t\t\tte\t')
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return 4


def make_indicvoices(root):
    for split, speakers in (("train", ["S1", "S2", "S3"]), ("valid", ["V1", "V2", "V3", "V4"])):
        buffers = []
        for speaker in speakers:
            buffer = io.BytesIO()
            sf.write(buffer, tone(1.2, 16000), 16000, format="WAV")
            buffers.append({"bytes": buffer.getvalue(), "path": f"{split}_{speaker}.wav"})
        table = hfd.Dataset.from_dict(
            {"audio_filepath": buffers, "text": [TEXT] * len(speakers), "speaker_id": speakers,
             "gender": ["female"] * len(speakers), "duration": [1.2] * len(speakers)},
            features=hfd.Features({"audio_filepath": {"bytes": hfd.Value("binary"), "path": hfd.Value("string")}, "text": hfd.Value("string"),
                                   "speaker_id": hfd.Value("string"), "gender": hfd.Value("string"),
                                   "duration": hfd.Value("float32")}),
        )  # fmt: skip
        (root / "telugu").mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(root / "telugu" / f"{split}-00000-of-00001.parquet"))
    return 7


FIXTURES = {
    "indictts": make_indictts,
    "openslr66": make_openslr66,
    "common_voice": make_common_voice,
    "indicvoices": make_indicvoices,
}


@pytest.mark.parametrize("corpus", sorted(FIXTURES))
def test_prepare_maps_the_corpus_into_the_dataset_schema(corpus, tmp_path):
    root, out = tmp_path / "download", tmp_path / "dataset"
    expected = FIXTURES[corpus](root)
    assert prepare([corpus, "--root", str(root), "--out", str(out)]) == 0
    splits = {s: load_split(out, s) for s in ("train", "validation", "test")}
    assert sum(len(s) for s in splits.values()) == expected
    assert all(s.features == features() for s in splits.values())
    rows = [row for s in splits.values() for row in s]
    assert all(row["id"].startswith(f"{corpus}/") and row["speaker"].startswith(f"{corpus}_")
               for row in rows)  # fmt: skip
    assert all(TEXT in row["text"] and row["role"] == "user" for row in rows)
    audio = decode_audio(rows[0]["audio"], 16000)
    assert (
        rows[0]["sampling_rate"] == 16000
        and abs(audio.shape[0] / 16000 - rows[0]["duration"]) < 1e-3
    )
    assert 0.9 < rows[0]["duration"] < 1.3  # resampled to 16 kHz, not stretched
    speakers = {name: set(s["speaker"]) for name, s in splits.items()}
    if corpus != "indictts":  # speaker-disjoint (IndicTTS: one speaker per gender, by utterance)
        assert not speakers["train"] & (speakers["validation"] | speakers["test"])
    crop = CodecCrops(splits["train"], 16000, crop_seconds=0.5, train=True)[0]["audio"]
    assert crop.shape == (1, 8000)


def test_common_voice_keeps_its_own_splits(tmp_path):
    make_common_voice(tmp_path / "cv")
    write_dataset(CORPORA["common_voice"](tmp_path / "cv"), tmp_path / "out", "common_voice")
    assert [len(load_split(tmp_path / "out", s)) for s in ("train", "validation", "test")] == [
        2,
        1,
        1,
    ]
    assert '"dev"' in load_split(tmp_path / "out", "validation")[0]["text"]  # quotes kept verbatim


def test_speaker_split_is_stable_and_holds_some_speakers_out():
    splits = [speaker_split(f"speaker_{i}") for i in range(400)]
    assert splits == [speaker_split(f"speaker_{i}") for i in range(400)]
    assert 0.7 < splits.count("train") / 400 < 0.9 and splits.count("test") > 10


def test_bad_input_gets_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert (
        prepare(["indictts", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no txt.done.data" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no usable utterances"):
        write_dataset([Utterance("a", "", "s", b""), Utterance("b", TEXT, "s", b"not audio")],
                      tmp_path / "o", "x")  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_the_gpu_recipe_composes_every_stage(tmp_path):
    """recipes/gpu_s2s_base.sh (DRY_RUN): each stage's overrides compose, bounded by time alone,
    at base size, with no checkpoint callbacks, the exports chained stage to stage."""
    import subprocess

    from telugu_s2s.paths import REPO_ROOT
    from telugu_s2s.train import compose_train_config

    script = REPO_ROOT / "recipes" / "gpu_s2s_base.sh"
    out = subprocess.run(
        ["bash", str(script), "BUNDLE", str(tmp_path / "work"), "470"], capture_output=True,
        text=True, check=True, env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin"}, cwd=REPO_ROOT,
    ).stdout  # fmt: skip
    stages = {}
    for line in out.splitlines():
        if line.startswith("train.py "):
            cfg = compose_train_config(line.split()[1:], tmp_path / "run")
            stages[cfg.export_dir.rsplit("/", 1)[-1]] = cfg
    assert sorted(stages) == ["duplex", "hearing", "listen_speak", "text"]
    for name, cfg in stages.items():
        assert cfg.trainer.max_steps == -1 and cfg.trainer.max_time.startswith("00:00:")
        assert cfg.trainer.accelerator == "gpu" and "model_checkpoint" not in cfg.callbacks
        if name != "hearing":  # the base size, with the copy head (COPY defaults to 1)
            assert cfg.model.net.cfg.num_layers == 6
            assert cfg.model.net.cfg.copy_head and cfg.model.net.cfg.copy_memory
    assert stages["listen_speak"].model.init_from == stages["text"].export_dir
    assert stages["listen_speak"].model.hearing_from == stages["hearing"].export_dir
    assert stages["duplex"].model.init_from == stages["listen_speak"].export_dir
    assert stages["text"].data.batch_size == 32 and stages["text"].trainer.max_time == "00:00:01:34"

    knobs = {"DRY_RUN": "1", "PATH": "/usr/bin:/bin", "TEXT_SHARE": "40", "TEXT_BATCH": "128",
             "TEXT_LR": "2e-3", "COPY": "0"}  # fmt: skip
    out = subprocess.run(
        ["bash", str(script), "BUNDLE", str(tmp_path / "work"), "470"], capture_output=True,
        text=True, check=True, env=knobs, cwd=REPO_ROOT,
    ).stdout  # fmt: skip
    (text,) = [line.split()[1:] for line in out.splitlines() if "experiment=s2s_text_tiny" in line]
    cfg = compose_train_config(text, tmp_path / "run")
    assert cfg.data.batch_size == 128 and cfg.model.lr == 2e-3
    assert not cfg.model.net.cfg.copy_head
    assert cfg.trainer.max_time == "00:00:03:08"  # 40% of 470 s


def _cpu_refresh_stages(tmp_path, listen_speak_min: str, duplex_min: str) -> list:
    """The configs that recipes/cpu_s2s_refresh.sh (DRY_RUN) would train, in order."""
    import subprocess

    from telugu_s2s.paths import REPO_ROOT
    from telugu_s2s.train import compose_train_config

    script = REPO_ROOT / "recipes" / "cpu_s2s_refresh.sh"
    out = subprocess.run(
        ["bash", str(script), "checkpoints/s2s", str(tmp_path / "work"), listen_speak_min,
         duplex_min],
        capture_output=True, text=True, check=True, env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
    ).stdout  # fmt: skip
    lines = [line.split()[1:] for line in out.splitlines() if line.startswith("train.py ")]
    return [compose_train_config(line, tmp_path / "run") for line in lines]


def test_the_cpu_refresh_composes_both_stages(tmp_path):
    """recipes/cpu_s2s_refresh.sh (DRY_RUN): listen-and-speak from the given export, then
    duplex from that, each bounded by its minutes, with lazily encoded tokens."""
    speak, duplex = _cpu_refresh_stages(tmp_path, "30", "75")
    assert speak.data.task == "s2s_listen_speak" and speak.model.init_from == "checkpoints/s2s"
    assert speak.model.hearing_from is None and speak.model.user_embedding_from is None
    assert duplex.model.init_from == speak.export_dir == str(tmp_path / "work" / "listen_speak")
    assert duplex.model.use_memory and duplex.export_dir == str(tmp_path / "work" / "duplex")
    assert (speak.trainer.max_time, duplex.trainer.max_time) == ("00:00:30:00", "00:01:15:00")
    for cfg in (speak, duplex):
        assert cfg.model.net.cfg.num_layers == 6 and not cfg.data.precompute_tokens
        assert cfg.trainer.max_steps == -1 and cfg.trainer.min_epochs == 0
        assert "model_checkpoint" in cfg.callbacks  # the best weights are what is exported


def test_the_cpu_refresh_without_listen_speak_goes_on_in_duplex(tmp_path):
    """LISTEN_SPEAK_MIN=0: only the duplex stage runs, from the given export."""
    stages = _cpu_refresh_stages(tmp_path, "0", "50")
    assert len(stages) == 1
    duplex = stages[0]
    assert duplex.data.task != "s2s_listen_speak" and duplex.model.init_from == "checkpoints/s2s"
    assert duplex.model.use_memory and duplex.trainer.max_time == "00:00:50:00"
