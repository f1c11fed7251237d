"""Provenance speaks of sources only: no text anywhere in the repository (data, tests/data, tools, docs,
code, the model catalog) says how a figure was looked up, and the listings users see print none."""

import json
import re
from pathlib import Path

import pytest

from vramcalc.cli import main

ROOT = Path(__file__).parent.parent
# The texts that describe how a figure was gathered instead of where it is published (issue 24, item 5).
GATHERING = re.compile("|".join(re.escape(t) for t in ("code" "-index", "index file" " id", "by the" " tool",
                                                        "looked_up" "_in_")), re.I)
SKIP_DIRS = {".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".venv", "venv", "node_modules", "build", "dist"}


def _files():
    for p in sorted(ROOT.rglob("*")):
        rel = p.relative_to(ROOT)
        if not p.is_file() or SKIP_DIRS & set(rel.parts) or p.suffix in (".gguf", ".safetensors", ".pyc"):
            continue
        data = p.read_bytes()
        if b"\0" in data[:8192]:
            continue
        yield rel, data.decode("utf-8", errors="replace")


def test_the_scan_covers_data_tests_tools_docs_and_the_catalog():
    names = {rel.as_posix() for rel, _ in _files()}
    assert {"vramcalc/data/gpus.json", "tests/data/vllm_budget_cases.json", "README.md", "docs/vllm.md"} <= names
    assert any(n.startswith("tools/") for n in names) and any(n.startswith("vramcalc/data/models/") for n in names)


def test_no_text_anywhere_says_how_a_figure_was_looked_up():
    found = [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for rel, text in _files() for m in GATHERING.finditer(text)]
    assert found == []


@pytest.mark.parametrize("listing", ["gpus", "models"])
def test_listings_print_sources_only(listing, capsys):
    assert main([listing, "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) and not GATHERING.search(out)
