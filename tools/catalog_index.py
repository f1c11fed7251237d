"""Write vramcalc/data/models_index.json: every catalog file's repo_id, file name, aliases and
base_model, so that resolving a name reads this one index and then only the model's own file.

    PYTHONPATH=$PWD python tools/catalog_index.py

tests/test_catalog_index.py fails when the committed index differs from what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "vramcalc" / "data" / "models"
INDEX = ROOT / "vramcalc" / "data" / "models_index.json"


def build() -> dict[str, Any]:
    models = []
    for path in sorted(MODELS.glob("*.json")):
        entry = json.loads(path.read_text())
        row: dict[str, Any] = {"repo_id": entry["repo_id"], "file": path.name, "aliases": entry.get("aliases") or []}
        if entry.get("base_model"):
            row["base_model"] = entry["base_model"]
        models.append(row)
    return {"_source": "generated from data/models/*.json by tools/catalog_index.py", "models": models}


def text() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    INDEX.write_text(text())
    print(f"{INDEX.relative_to(ROOT)}: {len(build()['models'])} models", file=sys.stderr)
