"""Push exported checkpoints to the Hugging Face Hub and pull them back.

    python -m telugu_s2s.hub push stage=codec repo_id=USER/telugu-s2s-codec [--dry-run]
    python -m telugu_s2s.hub pull stage=codec repo_id=USER/telugu-s2s-codec [overwrite=true]

A Hub repo holds one stage's export (`model.safetensors`, `config.json`, the speaker bank
for the speaker stage) and a model card (`README.md`) written from the export's manifest:
its metrics, the command that trained it, usage and the license. `pull` fills
`checkpoints/<stage>`, where the server and `make eval` read. The token comes from
`HF_TOKEN` or a saved `hf auth login`; it is never printed. `HF_ENDPOINT` (or `endpoint=`)
points at another Hub, e.g. a mirror or a test server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError

from telugu_s2s.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_metadata
from telugu_s2s.hub_download import (
    CARD_FILE,
    UPLOAD_PATTERNS,
    HubError,
    download,
    hub_endpoint,
    is_repo_id,
)
from telugu_s2s.paths import REPO_ROOT

__all__ = ["HubError", "download", "is_repo_id", "model_card", "plan_push", "pull", "push"]

STAGES = ("codec", "speaker", "s2s")
LICENSE = "apache-2.0"
STAGE_TITLES = {
    "codec": "streaming causal neural audio codec (16 kHz, 12.5 Hz frames)",
    "speaker": "speaker encoder and the bank of the four assistant voices",
    "s2s": "full-duplex speech-to-speech transformer",
}


def token_source() -> str:
    """Where the token will come from (never the token itself)."""
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "HF_TOKEN"
    from huggingface_hub import get_token

    return "saved login" if get_token() else "none"


# ---------------------------------------------------------------- model card


def _metrics_table(metrics: dict) -> str:
    if not metrics:
        return "No metrics were logged for this export."
    rows = [f"| `{name}` | {value:.4g} |" for name, value in sorted(metrics.items())]
    return "\n".join(["| metric | value |", "| --- | --- |", *rows])


def model_card(meta: dict, repo_id: str, stage: str) -> ModelCard:
    """The card for one stage's export, from its `config.json` manifest."""
    data = ModelCardData(
        license=LICENSE,
        language=["te"],
        library_name="telugu-s2s",
        tags=["telugu", "speech", "speech-to-speech", "full-duplex", stage],
    )
    command = meta.get("command") or "unknown"
    body = f"""
# {repo_id}

The **{stage}** stage of telugu-s2s, a full-duplex Telugu speech-to-speech system: a
{STAGE_TITLES.get(stage, stage)}. A plain PyTorch `{meta["model_class"].rsplit(".", 1)[-1]}`
rebuilt from `config.json` (its dataclass config) and `model.safetensors`; it loads without
Lightning.

## Metrics

The training run's last logged values (`config.json` -> `metrics`, step
{meta.get("global_step", "unknown")}); the weights are the best on the stage's optimized metric.

{_metrics_table(meta.get("metrics") or {})}

## Training

```bash
python {command}
```

Code commit `{meta.get("commit", "unknown")}`; weights stored as `{meta.get("stored_dtype", "native")}`.

## Usage

```bash
pip install -e .   # in a clone of telugu-s2s
python -m telugu_s2s.hub pull repo_id={repo_id} stage={stage} overwrite=true   # -> checkpoints/{stage}
make serve
```

```python
from telugu_s2s.checkpoint import load_pretrained

model = load_pretrained("{repo_id}")   # downloads into the Hugging Face cache
```

## License

Apache-2.0, like the code. The training data is the project's own synthetic Telugu corpus
voiced with espeak-ng (see the repository's README) unless the command above names a recipe
dataset, whose own license then applies too.
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


# ---------------------------------------------------------------- push


@dataclass(frozen=True)
class PlannedFile:
    path_in_repo: str
    size: int
    sha256: str


def _upload_files(export_dir: Path) -> list[Path]:
    files = sorted({p for pattern in UPLOAD_PATTERNS for p in export_dir.glob(pattern)})
    return [p for p in files if p.is_file()]


def plan_push(export_dir: str | Path, repo_id: str, stage: str) -> list[CommitOperationAdd]:
    """The commit operations that `push` sends: the export's files and the model card."""
    if stage not in STAGES:
        raise HubError(f"stage={stage!r}: expected one of {list(STAGES)}")
    if not is_repo_id(repo_id):
        raise HubError(f"repo_id={repo_id!r} is not a Hub repo id (expected USER/NAME)")
    export_dir = Path(export_dir)
    try:
        meta = read_metadata(export_dir)
    except FileNotFoundError as exc:
        raise HubError(str(exc)) from None
    if not (export_dir / WEIGHTS_FILE).is_file():
        raise HubError(f"no {WEIGHTS_FILE} in {export_dir}: not an exported checkpoint")
    if meta.get("stage", stage) != stage:
        raise HubError(f"{export_dir} holds a {meta['stage']!r} export, not {stage!r}")
    card = str(model_card(meta, repo_id, stage)).encode()
    ops = [CommitOperationAdd(CARD_FILE, card)]
    ops += [CommitOperationAdd(p.name, str(p)) for p in _upload_files(export_dir)]
    return ops


def describe(ops: list[CommitOperationAdd]) -> list[PlannedFile]:
    planned = []
    for op in ops:
        with op.as_file() as f:
            content = f.read()
        planned.append(
            PlannedFile(op.path_in_repo, len(content), hashlib.sha256(content).hexdigest())
        )
    return planned


def push(
    export_dir: str | Path,
    repo_id: str,
    stage: str,
    *,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
) -> list[PlannedFile]:
    """Create the repo if needed and commit the export + card in one commit."""
    ops = plan_push(export_dir, repo_id, stage)
    planned = describe(ops)
    print(f"repo {repo_id} (model, revision {revision or 'main'}); token: {token_source()}")
    for item in planned:
        print(f"  add {item.path_in_repo:28s} {item.size:>10d} bytes  sha256 {item.sha256[:12]}")
    if dry_run:
        print("dry run: nothing uploaded")
        return planned
    if token_source() == "none":
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (write access)")
    api = HfApi(endpoint=hub_endpoint(endpoint))
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.create_commit(
            repo_id,
            ops,
            commit_message=f"Upload the telugu-s2s {stage} export",
            revision=revision,
        )
    except HfHubHTTPError as exc:
        raise HubError(f"push to {repo_id} failed: {exc}") from None
    print(f"pushed: {info.commit_url}")
    return planned


# ---------------------------------------------------------------- pull


def pull(
    repo_id: str,
    stage: str,
    dest: str | Path | None = None,
    *,
    revision: str | None = None,
    endpoint: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Download a stage's export into `dest` (default `checkpoints/<stage>`).

    The files land in a staging folder beside `dest` and are checked (a readable manifest of
    the right stage) before `dest` is replaced, so a failed pull leaves `dest` as it was."""
    if stage not in STAGES:
        raise HubError(f"stage={stage!r}: expected one of {list(STAGES)}")
    if not is_repo_id(repo_id):
        raise HubError(f"repo_id={repo_id!r} is not a Hub repo id (expected USER/NAME)")
    dest = Path(dest) if dest else REPO_ROOT / "checkpoints" / stage
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise HubError(f"{dest} already holds files: pass overwrite=true to replace them")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    try:
        download(repo_id, revision=revision, endpoint=endpoint, local_dir=staging)
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        try:
            meta = read_metadata(staging)
        except FileNotFoundError:
            raise HubError(f"{repo_id} holds no {CONFIG_FILE}: not a telugu-s2s export") from None
        if meta.get("stage", stage) != stage:
            raise HubError(f"{repo_id} holds a {meta['stage']!r} export, not {stage!r}")
        if dest.exists():
            old = dest.with_name(f".{dest.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            staging.rename(dest)
            shutil.rmtree(old)
        else:
            staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"pulled {repo_id} ({meta.get('stage', stage)}, step {meta.get('global_step')}) -> {dest}"
    )
    return dest


# ---------------------------------------------------------------- command line

USAGE = """usage:
  python -m telugu_s2s.hub push stage=STAGE repo_id=USER/NAME [dir=checkpoints/STAGE]
                                [private=true] [revision=main] [endpoint=URL] [--dry-run]
  python -m telugu_s2s.hub pull stage=STAGE repo_id=USER/NAME [dest=checkpoints/STAGE]
                                [overwrite=true] [revision=main] [endpoint=URL]"""
KEYS = {
    "push": {"stage", "repo_id", "dir", "private", "revision", "endpoint"},
    "pull": {"stage", "repo_id", "dest", "overwrite", "revision", "endpoint"},
}


def _parse(argv: list[str]) -> tuple[str, dict[str, str], bool]:
    if not argv or argv[0] not in KEYS:
        raise HubError(USAGE)
    command, args, dry_run = argv[0], {}, False
    for arg in argv[1:]:
        if arg in ("--dry-run", "dry_run=true"):
            dry_run = True
            continue
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS[command]:
            raise HubError(f"unexpected argument {arg!r}\n{USAGE}")
        args[key] = value
    missing = {"stage", "repo_id"} - set(args)
    if missing:
        raise HubError(f"missing {', '.join(sorted(missing))}\n{USAGE}")
    if dry_run and command != "push":
        raise HubError("--dry-run applies to push")
    return command, args, dry_run


def _flag(value: str | None) -> bool:
    return (value or "false").lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    try:
        command, args, dry_run = _parse(sys.argv[1:] if argv is None else argv)
        stage = args["stage"]
        if command == "push":
            push(
                args.get("dir") or REPO_ROOT / "checkpoints" / stage,
                args["repo_id"],
                stage,
                private=_flag(args.get("private")),
                revision=args.get("revision"),
                endpoint=args.get("endpoint"),
                dry_run=dry_run,
            )
        else:
            pull(
                args["repo_id"],
                stage,
                args.get("dest"),
                revision=args.get("revision"),
                endpoint=args.get("endpoint"),
                overwrite=_flag(args.get("overwrite")),
            )
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
