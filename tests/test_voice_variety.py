"""Random espeak-ng voices for the recognizer: variants, their private data folder, the
rows built in them, and the asr datamodule that adds those rows to training."""

from __future__ import annotations

import numpy as np
import pytest

from telugu_s2s.data.espeak import Espeak
from telugu_s2s.data.voice_variety import (
    MAX_VARIANTS,
    build,
    random_variant,
    variety_data_dir,
    with_voice_variety,
)


def _formants(text: str) -> list[list[int]]:
    return [
        list(map(int, line.split()[2:])) for line in text.splitlines() if line.startswith("formant")
    ]


def test_variants_differ_and_name_themselves():
    rng = np.random.default_rng(0)
    first, second = random_variant(rng, "variety_000"), random_variant(rng, "variety_001")
    assert "name variety_000" in first and "name variety_001" in second
    assert len(_formants(first)) == 9 and _formants(first) != _formants(second)


@pytest.fixture
def bundled_espeak():
    yield
    Espeak.use_data_path(None)  # later tests render with the bundled voices


def _f0(voice: str) -> float:
    from telugu_s2s.data.voices import median_f0

    spoken = Espeak.instance().render("నమస్తే, నా పేరు ప్రవీణ్", voice, rate=150, pitch=50, pitch_range=20)
    return median_f0(spoken.audio.astype(np.float32) / 32768.0, spoken.sample_rate)


def test_the_private_folder_serves_its_variants(tmp_path, bundled_espeak):
    data = variety_data_dir(tmp_path, 5, seed=0)
    (data / "voices" / "!v" / "variety_004").write_text(
        "language variant\nname variety_004\ngender female\npitch 300 330\n"
    )  # a pitch band far above every bundled voice's
    Espeak.use_data_path(str(data))
    assert _f0("te+variety_004") > 250
    Espeak.use_data_path(None)  # back to the bundled voices: the variant is unknown there
    assert _f0("te+variety_004") < 200
    with pytest.raises(ValueError, match="voice list"):
        variety_data_dir(tmp_path, MAX_VARIANTS + 1, seed=0)


def test_rows_in_random_voices_join_the_recognizers_training_rows(
    tiny_dataset, tmp_path, bundled_espeak
):
    from telugu_s2s.data.datamodules import TeluguDataModule
    from telugu_s2s.data.datasets import load_split

    out = build(tiny_dataset, tmp_path / "variety", count=6, voices=3, seed=1)
    assert not (tmp_path / "variety.tmp").exists()
    train = load_split(tiny_dataset, "train")
    joined = with_voice_variety(train, out)
    assert len(joined) == len(train) + 6
    added = joined.select(range(len(train), len(joined)))
    assert set(added["speaker"]) <= {"variety_000", "variety_001", "variety_002"}
    assert set(added["text"]) <= set(train["text"]) and set(added["role"]) == {"user"}

    dm = TeluguDataModule(
        "asr", str(tiny_dataset), batch_size=2, augment=False, voice_variety_dir=str(out)
    )
    dm.setup()
    plain = TeluguDataModule("asr", str(tiny_dataset), batch_size=2, augment=False)
    plain.setup()
    assert len(dm.datasets["train"]) == len(plain.datasets["train"]) + 6
    assert len(dm.datasets["validation"]) == len(plain.datasets["validation"])
    item = dm.datasets["train"][len(dm.datasets["train"]) - 1]  # a rendered variety row
    assert item["length"] > 1000 and item["text"] in set(added["text"])

    with pytest.raises(FileNotFoundError, match="voice_variety"):
        with_voice_variety(train, tmp_path / "missing")

    # several builds (other seeds) join in order; the codec's crops take them too
    other = build(tiny_dataset, tmp_path / "variety_b", count=4, voices=2, seed=2)
    assert len(with_voice_variety(train, [out, other])) == len(train) + 10
    codec = TeluguDataModule("codec", str(tiny_dataset), batch_size=2, voice_variety_dir=[out])
    codec.setup()
    plain_codec = TeluguDataModule("codec", str(tiny_dataset), batch_size=2)
    plain_codec.setup()
    assert len(codec.datasets["train"]) == len(plain_codec.datasets["train"]) + 6
    assert len(codec.datasets["test"]) == len(plain_codec.datasets["test"])
    with pytest.raises(ValueError, match="asr or codec"):
        TeluguDataModule("s2s", str(tiny_dataset), voice_variety_dir=str(out))
