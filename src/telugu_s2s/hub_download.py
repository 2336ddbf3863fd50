"""Download an exported checkpoint from the Hugging Face Hub (the half of `telugu_s2s.hub`
that `checkpoint.load_pretrained` needs; it imports nothing else from the package)."""

from __future__ import annotations

import os
import re
from pathlib import Path

# What an export folder may hold that belongs on the Hub (Lightning checkpoints and logs don't).
UPLOAD_PATTERNS = ("*.safetensors", "config.json", "speaker_bank.yaml")
CARD_FILE = "README.md"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


class HubError(RuntimeError):
    """A push or pull that cannot go ahead; the message says why and what to do."""


def is_repo_id(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and bool(REPO_ID.match(source)) and ".." not in source


def hub_endpoint(endpoint: str | None = None) -> str | None:
    # huggingface_hub reads HF_ENDPOINT once, at import: read it at call time instead.
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def _cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    local_dir: str | Path | None = None,
) -> Path:
    """The repo's export files and card in the HF cache (or in `local_dir`)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    if not is_repo_id(repo_id):
        raise HubError(f"repo_id={repo_id!r} is not a Hub repo id (expected USER/NAME)")
    try:
        path = snapshot_download(
            repo_id,
            revision=revision,
            endpoint=hub_endpoint(endpoint),
            cache_dir=_cache_dir(),
            local_dir=local_dir,
            allow_patterns=[*UPLOAD_PATTERNS, CARD_FILE],
        )
    except (HfHubHTTPError, OSError) as exc:  # OSError: offline with nothing cached
        raise HubError(f"cannot download {repo_id}: {exc}") from None
    return Path(path)
