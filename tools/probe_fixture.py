"""What the llama.cpp probe recorders share (tools/record_mtmd_limits.py, tools/record_spec_limits.py): their
arguments (the llama.cpp tree, its CPU build, the commit they are) and the fixture they write under tests/data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def probe_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, type=Path, help="the llama.cpp source tree")
    ap.add_argument("--build", required=True, type=Path, help="its CPU build (the folder holding the libraries)")
    ap.add_argument("--commit", required=True, help="the llama.cpp commit the tree is")
    return ap.parse_args()


def write_probe_fixture(name: str, source: str, script: str, commit: str, runs: list[dict[str, Any]]) -> None:
    """tests/data/<name>.json: the runs with how they were made."""
    out = ROOT / "tests" / "data" / f"{name}.json"
    out.write_text(json.dumps({"_source": source, "produced_by": script, "llama_cpp_commit": commit, "runs": runs},
                              indent=1) + "\n")
