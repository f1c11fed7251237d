"""The notebooks run, cell by cell, and save their figures (needs the plot extra: matplotlib)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_saves_its_figures(path, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("VRAMCALC_FIGURES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cells = json.loads(path.read_text())["cells"]
    namespace: dict = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}[{i}]", "exec"), namespace)
    saved = "".join("".join(c["source"]) for c in cells).count(".savefig(")
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == saved >= 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000 for p in pngs)


def test_quickstart_answers_are_real():
    """The quickstart's table comes from the planner: spot-check two of its cells."""
    import vramcalc

    big = vramcalc.plan("llama-3.3-70b", "rtx4070", context=8192, top=1).recommendations[0]
    assert big.layout.split == "offload" and big.speed.decode_tokens_per_s < 5  # runs, from host RAM, slowly
    small = vramcalc.plan("llama-3.1-8b", "rtx4090", context=8192, top=1).recommendations[0]
    assert small.layout.split == "none" and small.speed.decode_tokens_per_s > 50
