"""The DSA sparse indexer's profile-run buffers, from vLLM's own code on a CPU machine:
tests/data/vllm_sparse_indexer_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_sparse_indexer_oracle.py \
        --out tests/data/vllm_sparse_indexer_oracle_v0.33.0.json

Per case (one process each, as vLLM reads its variables once, vllm/envs.py): EngineArgs.create_engine_config for
DeepSeek-V3.2 (tools/vllm_oracle.py _config) with the case's fields and VLLM_SPARSE_INDEXER_MAX_LOGITS_MB, in a TP
group of fake ranks; then vLLM 0.33.0's own
- get_max_prefill_buffer_size (vllm/v1/attention/backends/mla/indexer.py): the K-gather workspace's rows, with the
  sparse_mla_prefill_workspace_factor VllmConfig.__post_init__ resolved;
- sparse_attn_indexer (vllm/model_executor/layers/sparse_attn_indexer.py) called as the profile run calls it (no
  attention metadata), on meta tensors, a topk_indices_buffer shaped as models/deepseek_v32/nvidia/model.py
  DeepseekV32Model.__init__ shapes it and a WorkspaceManager on the meta device (vllm/v1/worker/workspace.py): the
  workspace bytes it leaves and every other tensor it allocates (the dummy logits buffer, the TP row-shard
  exchange transient), as torch.empty is asked for them.
The CPU platform answers is_cuda() False where tp_prefill_row_sharding_supported asks it; the oracle answers True
there, as the CUDA platform does (the case records the compilation config's cudagraph mode that function reads).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

STEM = "deepseek-ai__DeepSeek-V3.2"
# (TP, EngineArgs fields, environment, arguments of the sparse_attn_indexer call beyond the profile run's)
CASES: list[tuple[int, dict[str, Any], dict[str, str], dict[str, Any]]] = [
    (1, {}, {}, {}),
    (1, {}, {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "256"}, {}),
    (1, {}, {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "1024"}, {}),
    (1, {"max_model_len": 32768}, {}, {}),
    (1, {"max_model_len": 32768, "max_num_batched_tokens": 2048}, {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "128"}, {}),
    (8, {}, {}, {}),
    (8, {}, {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "64"}, {}),
    (8, {"max_model_len": 65536, "max_num_batched_tokens": 16384}, {}, {}),
    (8, {"attention_config": {"sparse_mla_prefill_workspace_factor": 2}}, {}, {}),
    (4, {"max_model_len": 131072, "attention_config": {"sparse_mla_prefill_workspace_factor": 3}},
     {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "2048"}, {}),
    (8, {"decode_context_parallel_size": 2}, {}, {}),
    (2, {"max_model_len": 8192}, {"VLLM_SPARSE_INDEXER_MAX_LOGITS_MB": "0"}, {}),
    # above 262144 tokens the factor defaults to 2 (vllm/config/vllm.py VllmConfig.__post_init__)
    (1, {"max_model_len": 327680}, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}, {}),
    (2, {"max_model_len": 262144}, {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}, {}),
    # PCP and DCP both above 1: the layer passes use_pcp and its DCP size (SparseAttnIndexer.forward_cuda); the
    # oracle's fake groups build DCP 2 and the call takes use_pcp as the layer would
    (8, {"decode_context_parallel_size": 2}, {}, {"use_pcp": True, "dcp_world_size": 2}),
]


def one(tp: int, args: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    import vllm_oracle as vo

    vo.setup()
    import torch

    entry = json.load(open(os.path.join(vo.MODELS, STEM + ".json")))
    config = vo._as_read(vo._catalog_config(entry["repo_id"]))
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(args)
    with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", args.get("max_model_len"))
    vo._init_group(tp, cfg)
    import vllm.envs as envs
    import vllm.model_executor.layers.sparse_attn_indexer as sai
    import vllm.v1.attention.backends.mla.indexer as idx
    from vllm.v1.worker import workspace as ws

    set_current_vllm_config = vo._vllm_config("set_current_vllm_config")

    class _AsCuda:  # tp_prefill_row_sharding_supported asks the platform; CUDA answers True
        def __getattr__(self, name: str) -> Any:
            return getattr(_plat, name)

        def is_cuda(self) -> bool:
            return True

    _plat = idx.current_platform
    idx.current_platform = _AsCuda()  # type: ignore[assignment]

    class _Ctx:
        attn_metadata = None

    sai.get_forward_context = lambda: _Ctx()  # type: ignore[assignment]
    ws.init_workspace_manager(torch.device("meta"))
    torch.accelerator.empty_cache = lambda: None  # the workspace grows on the meta device; there is no cache
    hf = cfg.model_config.hf_config
    # the CPU platform resolves its own max_num_batched_tokens; the buffers take the case's (8192 unless given,
    # tools/vllm_oracle.py _config's), as the CUDA scheduler config holds it
    mnbt = args.get("max_num_batched_tokens", 8192)
    meta = torch.device("meta")
    topk_buffer = torch.empty(mnbt, hf.index_topk, dtype=torch.int32, device=meta)
    allocated: list[int] = []
    empty = torch.empty

    def recording_empty(*shape: Any, **kw: Any) -> Any:
        t = empty(*shape, **kw)
        allocated.append(t.numel() * t.element_size())
        return t

    with set_current_vllm_config(cfg):
        rows = idx.get_max_prefill_buffer_size(cfg)
        hidden = torch.empty(mnbt, hf.hidden_size, dtype=torch.bfloat16, device=meta)
        q = torch.empty(mnbt, hf.index_n_heads, hf.index_head_dim, dtype=torch.float8_e4m3fn, device=meta)
        weights = torch.empty(mnbt, hf.index_n_heads, dtype=torch.float32, device=meta)
        kv_cache = torch.empty(0, device=meta)
        torch.empty = recording_empty  # type: ignore[assignment]
        try:
            sai.sparse_attn_indexer(hidden, "model.layers.0.self_attn.indexer.k_cache", kv_cache,
                                    q, None, None, weights, 128, "ue8m0", hf.index_topk, hf.index_head_dim,
                                    cfg.model_config.max_model_len, rows, topk_buffer, False,
                                    call.get("use_pcp", False), False, "", False,
                                    dcp_world_size=call.get("dcp_world_size", 1))
        finally:
            torch.empty = empty  # type: ignore[assignment]
    manager = ws.current_workspace_manager()
    workspace = sum(manager._workspace_size_bytes(w) for w in manager._current_workspaces)
    return {"model": entry["repo_id"], "tp": tp, "max_model_len": cfg.model_config.max_model_len,
            "max_num_batched_tokens": mnbt, "index_topk": hf.index_topk, "index_head_dim": hf.index_head_dim,
            "sparse_mla_prefill_workspace_factor": cfg.attention_config.sparse_mla_prefill_workspace_factor,
            "max_logits_mb": envs.VLLM_SPARSE_INDEXER_MAX_LOGITS_MB,
            "decode_context_parallel_size": cfg.parallel_config.decode_context_parallel_size,
            "cudagraph_mode": str(cfg.compilation_config.cudagraph_mode),
            "max_prefill_buffer_rows": rows, "workspace_bytes": workspace,
            "topk_indices_buffer_bytes": topk_buffer.numel() * topk_buffer.element_size(),
            # allocations past the workspace's own (its growth is counted in workspace_bytes)
            "transient_bytes": [b for b in allocated if b and b != workspace]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", type=int, default=None, help="(internal) run this case and print its row")
    a = ap.parse_args()
    if a.case is not None:
        tp, args, _env, call = CASES[a.case]
        vo.print_case_row(lambda: one(tp, args, call))
        return
    import importlib.metadata as md

    version = md.version("vllm")
    doc: dict[str, Any] = {"release": version, "cases": [], "produced_by": (
        f"vLLM {version} wheel, one process per case: EngineArgs.create_engine_config (tools/vllm_oracle.py _config) "
        "for DeepSeek-V3.2 with the case's fields and VLLM_SPARSE_INDEXER_MAX_LOGITS_MB, a TP group of fake ranks, "
        "then vllm/v1/attention/backends/mla/indexer.py get_max_prefill_buffer_size and "
        "vllm/model_executor/layers/sparse_attn_indexer.py sparse_attn_indexer's profile-run branch on meta tensors "
        "with a meta-device WorkspaceManager (its bytes after the call; every other torch.empty it made). Run on "
        "CPU: VLLM_TARGET_DEVICE=cpu the vllm venv python tools/vllm_sparse_indexer_oracle.py --out FILE")}
    for i, (tp, args, env_set, call) in enumerate(CASES):
        row = vo.case_in_subprocess(__file__, a.out, i, env_set)
        row.update(engine_args=args, env=env_set, call=call)
        doc["cases"].append(row)
        print(tp, args, env_set, call, row, file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
