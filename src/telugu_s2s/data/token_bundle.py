"""A token bundle: the S2S stages' training inputs with no audio in them, for a machine that
has no dataset build (a rented GPU). 31 MB for the 6,000-dialog build, against 7 GB.

    python -m telugu_s2s.data.token_bundle pack   --out bundle     (here, after `make data`)
    python -m telugu_s2s.data.token_bundle unpack bundle --root /tmp/build   (there)

`pack` keeps each split's text and label columns that training reads, the first K
codebooks of the codec's cached tokens (and of the training variants,
`data/token_variants.py`), `dialogs.jsonl` and the build's plan, all xz-compressed. The
evaluation splits can be cut to their first dialogs: a lease's run only checks them.
`duplex_only` leaves out what only the text stage and the ear read (the training dialogs'
text and the variants): 24 MB, for more duplex steps from an export (`DUPLEX_FROM=`).
`unpack` writes `<root>/dataset` (a DatasetDict without the audio column) and
`<root>/tokens/<codec digest>/`, which the datamodule reads as it reads a full build: token
timelines and utterance tasks never decode audio.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import shutil
from pathlib import Path

import numpy as np
import torch

from telugu_s2s.data.text_dialogs import DIALOGS_FILE
from telugu_s2s.data.token_variants import variants_path
from telugu_s2s.data.tokens import TokenCache, dataset_fingerprint

PLAN_FILE = "telugu_s2s.json"
MANIFEST = "bundle.json"
# Columns that no training stage reads (the evaluation runs on a full build).
DROPPED_COLUMNS = ("audio", "id", "valid_replies", "memory", "word_char_len")
TRAIN_SPLIT = "train"


def _write_xz(path: Path, payload: bytes) -> None:
    path.write_bytes(lzma.compress(payload, preset=6))


def _pack_codes(codes: list[torch.Tensor], num_codebooks: int) -> bytes:
    """Codes (K', F_i) per row -> one .npz of lengths (N,) and frames (K, sum F_i) uint16."""
    lengths = np.asarray([c.shape[1] for c in codes], np.int64)
    frames = np.concatenate([c[:num_codebooks].numpy().astype(np.uint16) for c in codes], axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, lengths=lengths, frames=frames)
    return buffer.getvalue()


def _unpack_codes(path: Path) -> list[torch.Tensor]:
    saved = np.load(io.BytesIO(lzma.decompress(path.read_bytes())))
    frames = torch.from_numpy(saved["frames"].astype(np.int16))  # (K, sum F_i)
    return list(torch.split(frames, saved["lengths"].tolist(), dim=1))


def pack(
    dataset_dir: str | Path, codec_dir: str | Path, out: str | Path,
    splits: tuple[str, ...] = ("train", "validation", "test"), num_codebooks: int = 4,
    eval_dialogs: int | None = None, duplex_only: bool = False,
) -> dict:  # fmt: skip
    """Write the bundle of `splits` to `out`, the evaluation splits cut to their first
    `eval_dialogs` dialogs; returns its manifest."""
    from telugu_s2s.data.datasets import load_split

    dataset_dir, out = Path(dataset_dir), Path(out)
    cache = TokenCache(dataset_dir, codec_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"codec_digest": cache.codec_digest, "num_codebooks": num_codebooks, "splits": {}}
    chosen: set[str] = set()  # the evaluation splits' dialogs that were kept
    for split in splits:
        rows = load_split(dataset_dir, split)
        fingerprint = dataset_fingerprint(dataset_dir, rows)
        tokens_path = cache.root / f"{split}.pt"
        if not tokens_path.exists():
            raise FileNotFoundError(
                f"no codec tokens at {tokens_path}: encode them first "
                f"(python -m telugu_s2s.data.tokens --splits {split})"
            )
        saved = torch.load(tokens_path, weights_only=True)
        if saved.get("dataset_fingerprint") != fingerprint:
            raise ValueError(f"{tokens_path} belongs to another dataset build: re-encode it")
        codes = saved["codes"]
        kept = rows.remove_columns([c for c in DROPPED_COLUMNS if c in rows.column_names])
        if split != TRAIN_SPLIT and eval_dialogs is not None:
            first = set(list(dict.fromkeys(kept["dialog_id"]))[:eval_dialogs])
            keep = [i for i, d in enumerate(kept["dialog_id"]) if d in first]
            kept, codes = kept.select(keep), [codes[i] for i in keep]
            chosen.update(first)
        table = {"features": kept.features.to_dict(), "columns": kept.to_dict()}
        _write_xz(out / f"{split}.rows.json.xz", json.dumps(table, ensure_ascii=False).encode())
        _write_xz(out / f"{split}.codes.npz.xz", _pack_codes(codes, num_codebooks))
        entry = {"rows": len(kept), "dataset_fingerprint": fingerprint, "variants": 0}
        variants = variants_path(cache, split)
        if split == TRAIN_SPLIT and variants.exists() and not duplex_only:
            held = torch.load(variants, weights_only=True)
            if held.get("dataset_fingerprint") == fingerprint:
                _write_xz(
                    out / f"{split}.variants.npz.xz", _pack_codes(held["codes"], num_codebooks)
                )
                meta = {
                    "rows": list(map(int, held["rows"])),
                    "speed": list(map(float, held["speed"])),
                }
                (out / f"{split}.variants.json").write_text(json.dumps(meta))
                entry["variants"] = len(meta["rows"])
        manifest["splits"][split] = entry

    def packed(dialog: dict) -> bool:
        split = dialog.get("split")
        if split == TRAIN_SPLIT:
            return split in splits and not duplex_only
        if eval_dialogs is None:
            return split in splits
        return dialog.get("dialog_id") in chosen

    lines = (dataset_dir / DIALOGS_FILE).read_text().splitlines()
    dialogs = [line for line in lines if line and packed(json.loads(line))]
    _write_xz(out / f"{DIALOGS_FILE}.xz", ("\n".join(dialogs) + "\n").encode())
    if (dataset_dir / PLAN_FILE).exists():
        shutil.copy(dataset_dir / PLAN_FILE, out / PLAN_FILE)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def unpack(bundle: str | Path, root: str | Path, codec_dir: str | Path) -> Path:
    """Rebuild `<root>/dataset` and its token caches from a bundle; returns the dataset dir.
    The codec must be the one the tokens came from."""
    import datasets as hfd

    bundle, root = Path(bundle), Path(root)
    manifest = json.loads((bundle / MANIFEST).read_text())
    dataset_dir = root / "dataset"
    cache = TokenCache(dataset_dir, codec_dir)  # checked before anything is written
    if cache.codec_digest != manifest["codec_digest"]:
        raise ValueError(
            f"the bundle's tokens come from codec {manifest['codec_digest']}, "
            f"not from {codec_dir} ({cache.codec_digest})"
        )
    splits = {}
    for split in manifest["splits"]:
        table = json.loads(lzma.decompress((bundle / f"{split}.rows.json.xz").read_bytes()))
        features = hfd.Features.from_dict(table["features"])
        splits[split] = hfd.Dataset.from_dict(table["columns"], features=features)
    hfd.DatasetDict(splits).save_to_disk(str(dataset_dir))
    (dataset_dir / DIALOGS_FILE).write_bytes(
        lzma.decompress((bundle / f"{DIALOGS_FILE}.xz").read_bytes())
    )
    if (bundle / PLAN_FILE).exists():
        shutil.copy(bundle / PLAN_FILE, dataset_dir / PLAN_FILE)
    cache.root.mkdir(parents=True, exist_ok=True)
    for split, entry in manifest["splits"].items():
        fingerprint = entry["dataset_fingerprint"]
        codes = _unpack_codes(bundle / f"{split}.codes.npz.xz")
        torch.save({"dataset_fingerprint": fingerprint, "codes": codes}, cache.root / f"{split}.pt")
        if entry["variants"]:
            meta = json.loads((bundle / f"{split}.variants.json").read_text())
            torch.save(
                {"dataset_fingerprint": fingerprint, "rows": meta["rows"], "speed": meta["speed"],
                 "codes": _unpack_codes(bundle / f"{split}.variants.npz.xz")},
                variants_path(cache, split),
            )  # fmt: skip
    return dataset_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.data.token_bundle")
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("pack", help="dataset build + token caches -> bundle")
    p.add_argument("--dataset-dir", default="data/build/dataset")
    p.add_argument("--codec-dir", default="checkpoints/codec")
    p.add_argument("--out", required=True)
    p.add_argument("--splits", nargs="+", default=["train", "validation", "test"])
    p.add_argument("--num-codebooks", type=int, default=4)
    p.add_argument("--eval-dialogs", type=int, default=None, help="cut evaluation splits")
    p.add_argument("--duplex-only", action="store_true", help="no training text, no variants")
    u = verbs.add_parser("unpack", help="bundle -> <root>/dataset and its token caches")
    u.add_argument("bundle")
    u.add_argument("--root", required=True)
    u.add_argument("--codec-dir", default="checkpoints/codec")
    args = parser.parse_args(argv)
    if args.verb == "pack":
        manifest = pack(
            args.dataset_dir, args.codec_dir, args.out, tuple(args.splits), args.num_codebooks,
            args.eval_dialogs, args.duplex_only,
        )  # fmt: skip
        size = sum(f.stat().st_size for f in Path(args.out).iterdir())
        print(json.dumps(manifest["splits"]), f"{size / 1e6:.1f} MB in {args.out}")
    else:
        print(unpack(args.bundle, args.root, args.codec_dir))


if __name__ == "__main__":
    main()
