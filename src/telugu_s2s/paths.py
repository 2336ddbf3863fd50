"""Where the monorepo keeps things. The package is installed editable (`pip install -e .`)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "conf"
CORPUS_DIR = REPO_ROOT / "data" / "corpus"
CHECKPOINT_DIR = REPO_ROOT / "checkpoints"
