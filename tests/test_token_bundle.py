"""The token bundle (data/token_bundle.py): a build without audio trains as the build it came
from, and the learning rate of a run bounded by time follows the clock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from telugu_s2s.data.datamodules import TeluguDataModule
from telugu_s2s.data.token_bundle import pack, unpack


def _setup(task: str, dataset_dir, codec_dir) -> TeluguDataModule:
    dm = TeluguDataModule(task, str(dataset_dir), codec_dir=str(codec_dir), num_codebooks=4)
    dm.setup()
    return dm


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def bundle_build(tiny_dataset, random_codec_dir, tmp_path_factory):
    _setup("s2s", tiny_dataset, random_codec_dir)  # encodes every split's tokens
    root = tmp_path_factory.mktemp("bundle")
    manifest = pack(tiny_dataset, random_codec_dir, root / "bundle")
    return manifest, unpack(root / "bundle", root / "build", random_codec_dir)


@pytest.mark.parametrize("task", ["s2s", "s2s_listen_speak", "s2s_text"])
def test_a_bundle_gives_the_items_of_its_build(task, bundle_build, tiny_dataset, random_codec_dir):
    manifest, dataset_dir = bundle_build
    assert not (dataset_dir / "audio").exists() and manifest["num_codebooks"] == 4
    full, light = (_setup(task, d, random_codec_dir) for d in (tiny_dataset, dataset_dir))
    for split in ("train", "validation"):
        a, b = full.datasets[split], light.datasets[split]
        assert len(a) == len(b) > 0
        for i in range(min(len(a), 6)):
            assert _same(a[i], b[i]), (task, split, i)


def test_evaluation_splits_are_cut_to_their_first_dialogs(
    tiny_dataset, random_codec_dir, tmp_path
):  # fmt: skip
    import datasets as hfd

    _setup("s2s", tiny_dataset, random_codec_dir)
    manifest = pack(tiny_dataset, random_codec_dir, tmp_path / "bundle", eval_dialogs=2)
    dataset_dir = unpack(tmp_path / "bundle", tmp_path / "build", random_codec_dir)
    full, cut = hfd.load_from_disk(str(tiny_dataset)), hfd.load_from_disk(str(dataset_dir))
    assert len(cut["train"]) == len(full["train"]) == manifest["splits"]["train"]["rows"]
    dialogs = list(dict.fromkeys(full["validation"]["dialog_id"]))[:2]
    assert list(dict.fromkeys(cut["validation"]["dialog_id"])) == dialogs
    # each kept row keeps its own codes
    light = _setup("s2s_listen_speak", dataset_dir, random_codec_dir).datasets["validation"]
    heavy = _setup("s2s_listen_speak", tiny_dataset, random_codec_dir).datasets["validation"]

    def keys(split) -> list[tuple]:
        columns = ("dialog_id", "turn_index", "speaker", "style")
        return list(zip(*(split[c] for c in columns), strict=True))

    full_keys = keys(full["validation"])
    for j, key in enumerate(keys(cut["validation"])):
        assert torch.equal(light.codes[j], heavy.codes[full_keys.index(key)][:4])


def test_a_duplex_only_bundle_holds_no_training_text_and_no_variants(
    tiny_dataset, random_codec_dir, tmp_path
):  # fmt: skip
    import json
    import lzma

    from telugu_s2s.data.datasets import _RowsDataset, load_split
    from telugu_s2s.data.token_variants import encode_variants
    from telugu_s2s.data.tokens import TokenCache

    _setup("s2s", tiny_dataset, random_codec_dir)
    cache = TokenCache(tiny_dataset, random_codec_dir)
    rows = _RowsDataset(load_split(tiny_dataset, "train"), 16000, seed=0, train=False)
    variants = encode_variants(cache, "train", rows, count=3)
    try:  # the shared build keeps no variants after this test
        full = pack(tiny_dataset, random_codec_dir, tmp_path / "full")
        lean = pack(tiny_dataset, random_codec_dir, tmp_path / "lean", duplex_only=True)
    finally:
        variants.unlink()
    assert full["splits"]["train"]["variants"] == 3 and lean["splits"]["train"]["variants"] == 0
    dialogs = lzma.decompress((tmp_path / "lean" / "dialogs.jsonl.xz").read_bytes()).decode()
    assert {json.loads(line)["split"] for line in dialogs.splitlines()} == {"validation", "test"}
    dataset_dir = unpack(tmp_path / "lean", tmp_path / "build", random_codec_dir)
    timelines = _setup("s2s", dataset_dir, random_codec_dir).datasets["train"]
    assert len(timelines) == len(_setup("s2s", tiny_dataset, random_codec_dir).datasets["train"])


def test_unpacking_with_another_codec_fails(bundle_build, tmp_path, tiny_dataset, random_codec_dir):
    from telugu_s2s.checkpoint import save_pretrained
    from telugu_s2s.models.codec import CodecConfig, CodecModel

    torch.manual_seed(1)
    other = save_pretrained(CodecModel(CodecConfig()), tmp_path / "other_codec")
    pack(tiny_dataset, random_codec_dir, tmp_path / "bundle", eval_dialogs=1)
    with pytest.raises(ValueError, match="codec"):
        unpack(tmp_path / "bundle", tmp_path / "build", other)


def test_a_run_bounded_by_time_follows_the_clock():
    from lightning.pytorch.callbacks import Timer

    from telugu_s2s.lit.s2s_module import warmup_cosine

    timer = Timer(duration={"seconds": 100})
    elapsed = {"now": 0.0}
    timer.time_elapsed = lambda stage="train": elapsed["now"]
    trainer = SimpleNamespace(max_steps=-1, estimated_stepping_batches=10**6, callbacks=[timer])
    module = SimpleNamespace(hparams=SimpleNamespace(lr=1.0, warmup_steps=10), _trainer=trainer)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    factor = warmup_cosine(module, opt)["lr_scheduler"]["scheduler"].lr_lambdas[0]
    assert factor(0) == pytest.approx(0.01) and factor(5) == pytest.approx(0.505)
    for seconds, expected in ((0.0, 1.0), (50.0, 0.55), (100.0, 0.1), (130.0, 0.1)):
        elapsed["now"] = seconds
        assert factor(500) == pytest.approx(expected)
    # with a step budget the schedule counts steps, whatever the clock says
    trainer.max_steps = 1000
    sched = warmup_cosine(module, opt)["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.SequentialLR)
