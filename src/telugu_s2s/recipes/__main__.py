"""python -m telugu_s2s.recipes CORPUS --root DOWNLOADED_DIR --out data/build/CORPUS"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from telugu_s2s.recipes import write_dataset
from telugu_s2s.recipes.corpora import CORPORA


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telugu_s2s.recipes", description=__doc__)
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument("--root", type=Path, required=True, help="the corpus as downloaded")
    parser.add_argument("--out", type=Path, required=True, help="where the DatasetDict goes")
    parser.add_argument("--max-utterances", type=int, default=None, help="a quick subset")
    parser.add_argument("--min-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root}: no such folder")
    try:
        dataset = write_dataset(CORPORA[args.corpus](args.root), args.out, args.corpus,
                                args.max_utterances, args.min_seconds)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sizes = {split: len(rows) for split, rows in dataset.items()}
    print(f"{args.corpus}: {sizes} -> {args.out}")
    print(f"train on it: python train.py stage=codec paths.dataset_dir={args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
