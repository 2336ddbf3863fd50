"""Every notebook in notebooks/ runs headless, top to bottom, on the tiny dataset and the
committed tiny checkpoints (nbclient, a fresh kernel each)."""

from __future__ import annotations

import pytest

from telugu_s2s.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_are_there():
    assert [p.stem.split("_", 1)[1] for p in NOTEBOOKS] == [
        "data_tour", "codec_eval", "speaker_embeddings", "s2s_eval"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tiny_dataset, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # the kernel inherits this environment: the notebooks' parameters cell reads it
    monkeypatch.setenv("TELUGU_S2S_DATASET", str(tiny_dataset))
    monkeypatch.setenv("TELUGU_S2S_CHECKPOINTS", str(REPO_ROOT / "checkpoints"))
    monkeypatch.setenv("TELUGU_S2S_MAX_CLIPS", "8")
    monkeypatch.setenv("TELUGU_S2S_LIMIT_DIALOGS", "1")
    monkeypatch.setenv("TELUGU_S2S_MAX_TURNS", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert not errors
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
