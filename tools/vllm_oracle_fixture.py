"""Merge tools/vllm_oracle.py outputs (one per TP degree) into one fixture per release, with the per-layer
specs folded into distinct kinds and their counts (tests/data/vllm_oracle/v<release>.json)."""

from __future__ import annotations

import glob
import json
import os
import sys
from collections import Counter
from typing import Any


def _quantized() -> set[str]:
    """Catalog models whose checkpoints are quantized: vLLM's CPU build picks CPU kernels for them, whose weight
    layouts are not CUDA's (AWQ packs differently), so their weight bytes are not kept."""
    out = set()
    for p in glob.glob(os.path.join(os.path.dirname(__file__), "..", "vramcalc", "data", "models", "*.json")):
        e = json.load(open(p))
        c = e["config"]
        if c.get("quantization_config") or (c.get("text_config") or {}).get("quantization_config"):
            out.add(e["repo_id"])
    return out


def fold(case: dict[str, Any], quantized: set[str]) -> dict[str, Any]:
    if case["model"] in quantized:
        case["weights_bytes_rank0"] = case["buffer_bytes_rank0"] = None
    kinds: Counter[str] = Counter(json.dumps(v, sort_keys=True) for v in case.pop("layers").values())
    case["layer_kinds"] = [dict(json.loads(k), layers=n) for k, n in sorted(kinds.items())]
    return case


def _key(c: dict[str, Any]) -> tuple[str, int, str]:
    return c["model"], c["tp"], c["kv_cache_dtype"]


def main() -> None:
    """vllm_oracle_fixture.py OUT RUN.json... [--onto FIXTURE.json]: with --onto, the cases of the runs replace
    that fixture's cases of the same model, TP and KV dtype, and the others are kept."""
    args = sys.argv[1:]
    onto = None
    if "--onto" in args:
        i = args.index("--onto")
        onto = args[i + 1]
        del args[i:i + 2]
    out, *inputs = args
    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    quantized = _quantized()
    for path in inputs:
        d = json.load(open(path))
        for k in ("release", "produced_by", "memory_note"):
            doc[k] = d[k]
        doc["cases"] += [fold(c, quantized) for c in d["cases"]]
        doc["unsupported"] += d["unsupported"]
    if onto:
        base = json.load(open(onto))
        assert base["release"] == doc["release"], (base["release"], doc["release"])
        new = {_key(c) for c in doc["cases"] + doc["unsupported"]}
        doc["cases"] += [c for c in base["cases"] if _key(c) not in new]
        doc["unsupported"] += [u for u in base["unsupported"] if _key(u) not in new]
    done = {(c["model"], c["tp"], c["kv_cache_dtype"]) for c in doc["cases"]}  # a later run built it
    doc["unsupported"] = [u for u in doc["unsupported"] if (u["model"], u["tp"], u["kv_cache_dtype"]) not in done]
    doc["cases"].sort(key=lambda c: (c["model"], c["tp"], c["kv_cache_dtype"]))
    doc["unsupported"].sort(key=lambda c: (c["model"], c["tp"], c["kv_cache_dtype"]))
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
