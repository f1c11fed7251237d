"""Merge tools/vllm_oracle.py outputs (one per TP degree) into one fixture per release, with the per-layer
specs folded into distinct kinds and their counts (tests/data/vllm_oracle/v<release>.json)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any


def fold(case: dict[str, Any]) -> dict[str, Any]:
    kinds: Counter[str] = Counter(json.dumps(v, sort_keys=True) for v in case.pop("layers").values())
    case["layer_kinds"] = [dict(json.loads(k), layers=n) for k, n in sorted(kinds.items())]
    return case


def main() -> None:
    out, *inputs = sys.argv[1:]
    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    for path in inputs:
        d = json.load(open(path))
        for k in ("release", "produced_by", "memory_note"):
            doc[k] = d[k]
        doc["cases"] += [fold(c) for c in d["cases"]]
        doc["unsupported"] += d["unsupported"]
    doc["cases"].sort(key=lambda c: (c["model"], c["tp"], c["kv_cache_dtype"]))
    doc["unsupported"].sort(key=lambda c: (c["model"], c["tp"], c["kv_cache_dtype"]))
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
