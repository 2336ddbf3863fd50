"""telugu_s2s.hub against a fake Hub served over HTTP on 127.0.0.1 (tests/fake_hub.py):
the push plan and card, the commit the server receives, the token, the pull and
`load_pretrained(repo_id)`."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch
import yaml

from telugu_s2s import hub
from telugu_s2s.checkpoint import load_pretrained, read_metadata, save_pretrained
from telugu_s2s.models.speaker import SpeakerEncoder, SpeakerEncoderConfig

from .fake_hub import running_fake_hub

SECRET = "hf_test_secret_token_never_printed"
REPO = "someone/telugu-s2s-speaker"


@pytest.fixture
def export_dir(tmp_path):
    torch.manual_seed(0)
    model = SpeakerEncoder(SpeakerEncoderConfig(channels=16, se_channels=8, mfa_channels=32,
                                                attention_channels=8, embedding_dim=16))  # fmt: skip
    extra = {"stage": "speaker", "metrics": {"val/loss": 1.25, "val/eer": 0.0312},
             "global_step": 42, "commit": "abc123", "command": "train.py experiment=speaker_tiny"}  # fmt: skip
    out = save_pretrained(model, tmp_path / "export", extra=extra)
    (out / "speaker_bank.yaml").write_text("speakers: [arjun]\n")
    (out / "notes.txt").write_text("not for the Hub")
    return out


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with running_fake_hub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_push_plan_is_the_export_and_a_card(export_dir, capsys):
    planned = hub.push(export_dir, REPO, "speaker", dry_run=True)
    expected = {p: sha256((export_dir / p).read_bytes())
                for p in ("config.json", "model.safetensors", "speaker_bank.yaml")}  # fmt: skip
    assert [p.path_in_repo for p in planned] == ["README.md", *sorted(expected)]
    assert {p.path_in_repo: p.sha256 for p in planned[1:]} == expected
    out = capsys.readouterr().out
    assert "dry run: nothing uploaded" in out and "notes.txt" not in out
    assert all(p.path_in_repo in out for p in planned)


def test_card_has_metrics_command_usage_and_license(export_dir):
    card = str(hub.model_card(read_metadata(export_dir), REPO, "speaker"))
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["language"] == ["te"]
    assert "| `val/eer` | 0.0312 |" in card and "| `val/loss` | 1.25 |" in card
    assert "python train.py experiment=speaker_tiny" in card
    assert f'load_pretrained("{REPO}")' in card
    assert f"python -m telugu_s2s.hub pull repo_id={REPO} stage=speaker" in card
    assert "## License" in card


def test_push_commits_exactly_the_plan_with_the_token(export_dir, hub_env, capsys):
    planned = hub.push(export_dir, REPO, "speaker")
    assert len(hub_env.commits) == 1
    commit = hub_env.commits[0]
    assert commit["repo"] == REPO
    assert {p: sha256(b) for p, b in commit["files"].items()} == {
        p.path_in_repo: p.sha256 for p in planned
    }
    assert commit["files"]["model.safetensors"] == (export_dir / "model.safetensors").read_bytes()
    writes = [r for r in hub_env.requests if r.method == "POST"]
    assert writes and all(r.authorization == f"Bearer {SECRET}" for r in writes)
    assert SECRET not in capsys.readouterr().out


def test_pull_round_trip_and_load_by_repo_id(export_dir, hub_env, tmp_path):
    hub.push(export_dir, REPO, "speaker")
    dest = hub.pull(REPO, "speaker", tmp_path / "checkpoints" / "speaker")
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "speaker_bank.yaml"
    ]  # fmt: skip
    original = load_pretrained(export_dir).state_dict()
    for loaded in (load_pretrained(dest), load_pretrained(REPO)):
        assert loaded.state_dict().keys() == original.keys()
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in original.items())


def test_pull_keeps_existing_files_unless_overwrite(export_dir, hub_env, tmp_path):
    hub.push(export_dir, REPO, "speaker")
    dest = tmp_path / "speaker"
    dest.mkdir()
    (dest / "config.json").write_text("{}")
    with pytest.raises(hub.HubError, match="overwrite=true"):
        hub.pull(REPO, "speaker", dest)
    with pytest.raises(hub.HubError, match="'speaker' export, not 'codec'"):
        hub.pull(REPO, "codec", dest, overwrite=True)
    assert (dest / "config.json").read_text() == "{}"  # a refused pull changes nothing
    with pytest.raises(hub.HubError, match="cannot download"):
        hub.pull("someone/missing", "speaker", dest, overwrite=True)
    assert (dest / "config.json").read_text() == "{}"
    assert hub.pull(REPO, "speaker", dest, overwrite=True) == dest
    assert read_metadata(dest)["global_step"] == 42
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_cli_dry_run_and_bad_input(export_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    cmd = [sys.executable, "-m", "telugu_s2s.hub", "push", "stage=speaker", f"repo_id={REPO}",
           f"dir={export_dir}", "--dry-run"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "token: HF_TOKEN" in result.stdout and "add model.safetensors" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert hub.main(["push", "stage=speaker", "repo_id=not a repo", f"dir={export_dir}"]) == 2
    assert hub.main(["push", "stage=vocoder", f"repo_id={REPO}"]) == 2
    assert hub.main(["push", "stage=codec", f"repo_id={REPO}", f"dir={export_dir}"]) == 2
    assert hub.main(["push", "stage=speaker", f"repo_id={REPO}", f"dir={tmp_path}"]) == 2
    assert hub.main(["pull", "stage=speaker"]) == 2
    assert hub.main(["fetch"]) == 2


def test_load_pretrained_names_both_readings_when_nothing_matches(hub_env):
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub repo"):
        load_pretrained("someone/missing")
