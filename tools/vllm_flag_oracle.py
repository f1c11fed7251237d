"""vLLM serve flags that reshape the model or the KV cache, planned by vLLM's own code on a CPU machine (the oracle
of tools/vllm_oracle.py with the flag's EngineArgs field set): tests/data/vllm_flag_oracle.json.

    for tp in 1 2 4 8; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.30.0/bin/python tools/vllm_flag_oracle.py \
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
    ("Qwen__Qwen3-0.6B", 1, {"hf_overrides": {"intermediate_size": 1024, "vocab_size": 32000, "head_dim": 64,
                                              "num_attention_heads": 8, "hidden_size": 512}}),
    ("Qwen__Qwen3-30B-A3B", 2, {"hf_overrides": {"moe_intermediate_size": 384, "num_experts_per_tok": 4,
                                                 "num_hidden_layers": 6}}),
    ("google__gemma-3-4b-it", 1, {"hf_overrides": {"text_config": {"sliding_window": 512,
                                                                   "max_position_embeddings": 32768}}}),
    # --decode-context-parallel-size: the KV cache's tokens dealt over the DCP ranks within TP
    # (config/parallel.py ParallelConfig, v1/kv_cache_interface.py FullAttentionSpec.max_memory_usage_bytes)
    ("Qwen__Qwen2.5-3B", 4, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen2.5-3B", 8, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen2.5-3B", 8, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen2.5-1.5B", 4, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen2.5-1.5B", 4, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen2-0.5B-Instruct", 4, {"decode_context_parallel_size": 2}),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"decode_context_parallel_size": 2}),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 2, {"decode_context_parallel_size": 2}),
    ("Qwen__Qwen3-8B", 4, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 2, {"decode_context_parallel_size": 4}),
    ("Qwen__Qwen3-8B", 4, {"decode_context_parallel_size": 3}),
    ("google__gemma-3-1b-it", 2, {"decode_context_parallel_size": 2}),
    # --enable-eplb with --eplb-config num_redundant_experts: experts per EP rank
    # (model_executor/layers/fused_moe/layer.py FusedMoEFactory) and EplbState's tensors (eplb_state)
    ("Qwen__Qwen3-30B-A3B", 2, {"enable_expert_parallel": True, "enable_eplb": True,
                                "eplb_config": {"num_redundant_experts": 2}}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True, "enable_eplb": True,
                                "eplb_config": {"num_redundant_experts": 4}}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True, "enable_eplb": True}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True, "enable_eplb": True,
                                "eplb_config": {"num_redundant_experts": 2}}),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"enable_expert_parallel": True, "enable_eplb": True,
                                          "eplb_config": {"num_redundant_experts": 4, "window_size": 500}}),
    ("Qwen__Qwen3-30B-A3B", 4, {"enable_expert_parallel": True}),
    ("Qwen__Qwen3-30B-A3B", 2, {"eplb_config": {"num_redundant_experts": 2}}),
    ("Qwen__Qwen3-30B-A3B", 2, {"enable_eplb": True}),
]


class _CudaAlike:
    """The platform, answering is_cuda_alike() as CUDA does (read by ParallelConfig's EPLB check only)."""

    def __init__(self, platform: Any) -> None:
        self._platform = platform

    def is_cuda_alike(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._platform, name)


_BUILT: list[tuple[Any, Any]] = []  # (model, VllmConfig) of the last model built


def _capture_models() -> None:
    """Keep the model tools/vllm_oracle.py builds, for EplbState to be built on it."""
    from vllm.model_executor.model_loader import utils

    build = utils.initialize_model

    def initialize_model(*a: Any, **k: Any) -> Any:
        model = build(*a, **k)
        _BUILT[:] = [(model, k["vllm_config"])]
        return model

    utils.initialize_model = initialize_model


def _eplb_state(model: Any, cfg: Any) -> dict[str, int]:
    """The device memory EplbState.add_model allocates (vllm/distributed/eplb/eplb_state.py), its tensors' bytes by
    name: the maps and load records on the CPU (their shapes are the device's), the expert buffer on the meta
    device of the model's weights (empty_like). The communicator, which only moves weights, and the rearranging thread's CUDA event are not built."""
    import torch
    from vllm.distributed.eplb import eplb_state as es

    es.create_eplb_communicator = lambda **k: None
    es.CpuGpuEvent = lambda: None  # a CUDA event for the rearranging thread, no memory
    es.get_eplb_group = lambda: None
    state = es.EplbState(cfg.parallel_config, torch.device("cpu"))
    with vo._vllm_config("set_current_vllm_config")(cfg):
        state.add_model(model, cfg.model_config)
    ms = next(iter(state.model_states.values()))
    out: dict[str, int] = {}
    for name in ("physical_to_logical_map_buffer", "logical_to_physical_map", "logical_replica_count",
                 "expert_load_pass_buffer", "expert_load_window"):
        t = getattr(ms, name)
        out[name] = t.numel() * t.element_size()
    out["expert_buffer"] = sum(t.numel() * t.element_size() for t in ms.expert_buffer)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--flag", default=None, help="only the cases setting this EngineArgs field")
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[2.0, 16.0])
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    vo.setup()
    import torch.fx.experimental._config as fx_config
    import vllm
    import vllm.config.parallel as parallel

    # the EP expert map is built with torch.nonzero, which the meta device answers only when told to
    fx_config.meta_nonzero_assume_all_nonzero = True
    # and the expert map's log line reads its entries (.item()), which meta tensors do not hold; the map is unchanged
    from vllm.model_executor.layers.fused_moe import expert_map_manager

    expert_map_manager.ExpertMapManager.get_compressed_map_string = lambda self: ""  # type: ignore[method-assign]
    platform = parallel.current_platform
    _capture_models()

    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel, the planner of tools/vllm_oracle.py (EngineArgs.create_engine_config, the "
        "model class built on the meta device under a TP group of fake ranks, the layers' KV cache specs with "
        "FlashAttention / Triton MLA as the CUDA backends, kv_cache_utils.get_kv_cache_configs) with each case's "
        "EngineArgs fields set as `vllm serve` parses the flag; run on CPU with VLLM_TARGET_DEVICE=cpu: "
        f"VLLM_TARGET_DEVICE=cpu the vllm {vllm.__version__} venv python tools/vllm_flag_oracle.py --tp N "
        "(N = 1, 2, 4, 8)"), memory_note="memory_bytes is the KV budget handed to get_kv_cache_configs for every rank")

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
        # ParallelConfig refuses EPLB off CUDA / ROCm; the oracle builds the model on the meta device, as CUDA does
        parallel.current_platform = _CudaAlike(platform) if args.get("enable_eplb") else platform
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(copy.deepcopy(args))  # vLLM completes the dicts it is handed in place
        t = time.time()
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                row = vo.run_one(path, tp, "auto", a.memory_gib, None)
            row["engine_args"] = args
            if args.get("enable_eplb"):
                row["eplb_state"] = _eplb_state(*_BUILT[-1])
            row = fold(row, set())  # the per-layer specs as distinct kinds and their counts
            doc["cases"].append(row)
            print(f"{repo} tp{tp} {args}: {time.time() - t:.1f}s", file=sys.stderr)
        except Exception as e:  # what vLLM itself refuses, recorded as its message
            if os.environ.get("VLLM_ORACLE_DEBUG"):
                raise
            msg = vo.refusal_text(e)
            doc["unsupported"].append({"model": repo, "tp": tp, "engine_args": args, "error": msg})
            print(f"{repo} tp{tp} {args}: {msg}", file=sys.stderr)
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
