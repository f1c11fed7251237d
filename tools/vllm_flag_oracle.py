"""vLLM serve flags that reshape the model or the KV cache, planned by vLLM's own code on a CPU machine (the oracle
of tools/vllm_oracle.py with the flag's EngineArgs field set): tests/data/vllm_flag_oracle.json.

    for tp in 1 2 4; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.30.0/bin/python tools/vllm_flag_oracle.py \
        --tp $tp --out /tmp/flag-oracle.json; done

Each case names a catalog model, the TP degree and the EngineArgs fields of the flag (as `vllm serve` parses it:
--hf-overrides JSON is the dict EngineArgs.hf_overrides holds). The row is tools/vllm_oracle.py's (max_model_len,
per-layer KV specs, the plan of each KV budget, weights per rank), with `engine_args` naming the fields set; what
vLLM refuses is recorded as its error message.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402
from vllm_oracle_fixture import fold  # noqa: E402

# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    # --hf-overrides: flat keys set on the loaded config (transformers_utils/config.py get_config config.update),
    # dict values merged into a nested config or set whole (config/model.py ModelConfig._apply_dict_overrides)
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"num_hidden_layers": 4}}),
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"max_position_embeddings": 8192}}),
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                               "original_max_position_embeddings": 32768}}}),
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"rope_parameters": {"rope_type": "yarn", "factor": 4.0,
                                                                  "original_max_position_embeddings": 32768,
                                                                  "rope_theta": 1000000}}}),
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"num_hidden_layers": 40}}),
    ("google__gemma-3-1b-it", 1, {"hf_overrides": {"num_hidden_layers": 8}}),
    ("Qwen__Qwen3-8B", 2, {"hf_overrides": {"num_key_value_heads": 4, "num_hidden_layers": 12}}),
    ("Qwen__Qwen3-8B", 1, {"hf_overrides": {"sliding_window": 4096, "use_sliding_window": True,
                                            "max_window_layers": 18}}),
    ("google__gemma-3-1b-it", 1, {"hf_overrides": {"sliding_window": 256}}),
    ("google__gemma-3-4b-it", 1, {"hf_overrides": {"text_config": {"num_hidden_layers": 6}}}),
    ("google__gemma-3-4b-it", 1, {"hf_overrides": {"num_hidden_layers": 6}}),
    ("mistralai__Mistral-7B-Instruct-v0.3", 1, {"hf_overrides": {"sliding_window": 4096}}),
    ("Qwen__Qwen3-30B-A3B", 2, {"hf_overrides": {"num_experts": 64, "num_hidden_layers": 8}}),
    # --decode-context-parallel-size: the KV cache's tokens dealt over the DCP ranks within TP
    # (config/parallel.py ParallelConfig, v1/kv_cache_interface.py FullAttentionSpec.max_memory_usage_bytes)
    ("Qwen__Qwen3-8B", 2, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 4, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 4, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 2, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 4, {"decode_context_parallel_size": 3}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"decode_context_parallel_size": 2}),
    ("google__gemma-3-1b-it", 2, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-0.6B", 4, {"decode_context_parallel_size": 4}),
    # --enable-eplb with --eplb-config num_redundant_experts: experts per EP rank
    # (model_executor/layers/fused_moe/layer.py FusedMoE)
    ("Qwen__Qwen3-30B-A3B", 2, {"enable_expert_parallel": True, "enable_eplb": True,
                                "eplb_config": {"num_redundant_experts": 2}}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True, "enable_eplb": True,
                                "eplb_config": {"num_redundant_experts": 4}}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True, "enable_eplb": True}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True}),
    ("Qwen__Qwen3-30B-A3B", 2, {"eplb_config": {"num_redundant_experts": 2}}),
    ("Qwen__Qwen3-30B-A3B", 2, {"enable_eplb": True}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--flag", default=None, help="only the cases setting this EngineArgs field")
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[2.0, 16.0])
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel, the planner of tools/vllm_oracle.py (EngineArgs.create_engine_config, the "
        "model class built on the meta device under a TP group of fake ranks, the layers' KV cache specs with "
        "FlashAttention / Triton MLA as the CUDA backends, kv_cache_utils.get_kv_cache_configs) with each case's "
        "EngineArgs fields set as `vllm serve` parses the flag; run on CPU with VLLM_TARGET_DEVICE=cpu: "
        f"VLLM_TARGET_DEVICE=cpu the vllm {vllm.__version__} venv python tools/vllm_flag_oracle.py --tp N "
        "(N = 1, 2, 4)"), memory_note="memory_bytes is the KV budget handed to get_kv_cache_configs for every rank")

    def key(c: dict[str, Any]) -> str:
        return json.dumps([c["model"], c["tp"], c["engine_args"]], sort_keys=True)

    done = {key(c) for c in doc["cases"]} | {key(c) for c in doc["unsupported"]}
    for stem, tp, args in CASES:
        if tp != a.tp or (a.flag and a.flag not in args):
            continue
        path = os.path.join(vo.MODELS, stem + ".json")
        repo = json.load(open(path))["repo_id"]
        if key({"model": repo, "tp": tp, "engine_args": args}) in done:
            continue
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(copy.deepcopy(args))  # vLLM completes the dicts it is handed in place
        t = time.time()
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                row = vo.run_one(path, tp, "auto", a.memory_gib, None)
            row["engine_args"] = args
            row = fold(row, set())  # the per-layer specs as distinct kinds and their counts
            doc["cases"].append(row)
            print(f"{repo} tp{tp} {args}: {time.time() - t:.1f}s", file=sys.stderr)
        except Exception as e:  # what vLLM itself refuses, recorded as its message
            if os.environ.get("VLLM_ORACLE_DEBUG"):
                raise
            msg = f"{type(e).__name__}: {' '.join(str(e).split())[:600]}"
            doc["unsupported"].append({"model": repo, "tp": tp, "engine_args": args, "error": msg})
            print(f"{repo} tp{tp} {args}: {msg}", file=sys.stderr)
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
