"""vLLM 0.34.0's DSA sparse indexer profile-run transients (the dummy logits tensor, the fused MQA + top-k scratch),
from vLLM's own code on a CPU machine: tests/data/vllm_sparse_indexer_dummy_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_sparse_indexer_dummy_oracle.py \
        --out tests/data/vllm_sparse_indexer_dummy_oracle_v0.34.0.json

Per case (one process each, as vLLM reads its variables once, vllm/envs.py): EngineArgs.create_engine_config
(tools/vllm_oracle.py _config) for DeepSeek-V3.2's catalog config, or a GLM-5-style variant of it (architecture
GlmMoeDsaForCausalLM and a 32-head indexer, the shape the fused kernel takes; GLM-5's own config is not in the
catalog), with the case's fields and variables, in a TP group of fake ranks. The CPU platform is then replaced,
where the indexer code asks it, by a CUDA device of the case's compute capability and SM count:
- the model's verify_and_update_config (vllm/model_executor/models/config.py MODELS_CONFIG_MAP, by architecture)
  is run again under that device, as it runs on CUDA while VllmConfig is built, from the attention config's
  indexer_logits_dtype as given (DeepSeek-V3.2 picks BF16 logits where vllm/utils/deep_gemm.py
  mqa_logits_use_mx_scales holds, SM 10.x);
- the indexer layer's logits dtype and top-k backend are read as vllm/model_executor/layers/sparse_attn_indexer.py
  SparseAttnIndexer.__init__ reads them, and get_max_prefill_buffer_size gives the K-gather rows;
- sparse_attn_indexer is called as the profile run calls it (no attention metadata) on meta tensors of
  max_num_batched_tokens rows, with a meta-device WorkspaceManager; every tensor it allocates with torch.empty /
  torch.zeros is recorded, in order. vllm/model_executor/kernels/attention/dsa/fused_mqa_topk.py
  fused_mqa_topk_available is answered True on SM 10.x (the CUDA build's fused_mqa_topk_prefill op is taken as
  compiled in) and _sm_count with the case's SM count.
The CPU platform's max_num_seqs / max_num_batched_tokens are replaced by the case's (as the CUDA scheduler config
holds them), since the profile branch reads both.
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
V32 = {"arch": "DeepseekV32ForCausalLM", "index_n_heads": 64}
GLM = {"arch": "GlmMoeDsaForCausalLM", "index_n_heads": 32}
B200 = {"capability": "10.0", "sms": 148}
B300 = {"capability": "10.3", "sms": 160}
H100 = {"capability": "9.0", "sms": 132}
DEC = "VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB"
PRE = "VLLM_SPARSE_INDEXER_MAX_LOGITS_MB"
FUSED = "VLLM_USE_FUSED_MQA_TOPK"
S = {"max_num_seqs": 256, "max_num_batched_tokens": 8192}


def _a(**kw: Any) -> dict[str, Any]:
    return dict(S, **kw)


# (model, device, TP, EngineArgs fields, environment, call arguments beyond the profile run's)
CASES: list[tuple[dict[str, Any], dict[str, Any], int, dict[str, Any], dict[str, str], dict[str, Any]]] = [
    (V32, B200, 1, _a(), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024), {DEC: "0"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024), {DEC: "512"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024), {DEC: "4096", PRE: "128"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024), {DEC: "0", PRE: "128"}, {}),
    (V32, B200, 4, _a(max_model_len=32768, max_num_seqs=512), {PRE: "64"}, {}),
    (V32, B200, 4, _a(max_model_len=32768, max_num_seqs=512), {PRE: "64", DEC: "0"}, {}),
    (V32, B200, 8, _a(max_num_seqs=512, speculative_config={"method": "mtp", "num_speculative_tokens": 3}), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=512, speculative_config={"method": "mtp", "num_speculative_tokens": 3}),
     {DEC: "0"}, {}),
    (V32, B200, 8, _a(max_num_seqs=32, max_num_batched_tokens=32), {DEC: "0", PRE: "16"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, attention_config={"indexer_logits_dtype": "float32"}), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, attention_config={"indexer_logits_dtype": "float32"}), {DEC: "0"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, sparse_indexer_topk_backend="deep_select"), {DEC: "0"}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, sparse_indexer_topk_backend="torch"), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, kv_cache_dtype="fp8"), {}, {}),
    (V32, B200, 8, _a(max_num_seqs=1024, decode_context_parallel_size=2), {}, {}),
    (V32, B300, 8, _a(max_num_seqs=1024), {}, {}),
    (V32, H100, 8, _a(max_num_seqs=1024), {}, {}),
    (V32, H100, 8, _a(max_num_seqs=1024), {DEC: "512", FUSED: "0"}, {}),
    (V32, H100, 8, _a(max_num_seqs=512, speculative_config={"method": "mtp", "num_speculative_tokens": 3}), {}, {}),
    (V32, H100, 1, _a(max_model_len=32768), {PRE: "1024"}, {}),
    (V32, H100, 8, _a(max_num_seqs=1024, attention_config={"indexer_logits_dtype": "bfloat16"}), {}, {}),
    (GLM, B200, 8, _a(max_num_seqs=1024), {}, {}),
    (GLM, B200, 8, _a(max_num_seqs=1024), {DEC: "0"}, {}),
    (GLM, B200, 8, _a(max_num_seqs=1024), {FUSED: "0"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8), {PRE: "64"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8), {PRE: "64", FUSED: "0"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8, max_num_batched_tokens=512), {PRE: "16"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8, max_num_batched_tokens=2048), {PRE: "16"}, {}),
    (GLM, B300, 8, _a(max_model_len=16384, max_num_seqs=8), {PRE: "64"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8, decode_context_parallel_size=2), {PRE: "64"}, {}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8, decode_context_parallel_size=2), {PRE: "64"},
     {"use_pcp": True}),
    (GLM, B200, 8, _a(max_model_len=16384, max_num_seqs=8), {PRE: "64", "VLLM_BATCH_INVARIANT": "1"}, {}),
    (GLM, B200, 8, _a(max_num_seqs=256, speculative_config={"method": "mtp", "num_speculative_tokens": 1},
                      kv_cache_dtype="fp8"), {DEC: "1024"}, {}),
    (GLM, H100, 8, _a(max_model_len=16384, max_num_seqs=8), {PRE: "64"}, {}),
    (GLM, B200, 8, _a(max_num_seqs=1024, attention_config={"indexer_logits_dtype": "bfloat16"}), {}, {}),
    # where the forward pass, not the sampler, sets vramcalc's activation peak (tests/test_vllm_sparse_indexer_dummy.py)
    (V32, B200, 8, _a(speculative_config={"method": "mtp", "num_speculative_tokens": 3}), {}, {}),
    (V32, B200, 8, _a(speculative_config={"method": "mtp", "num_speculative_tokens": 3}), {DEC: "0"}, {}),
]


def _device(plat: Any, capability: str, sms: int) -> Any:
    """The CPU platform answering, where the indexer code asks, as a CUDA device of this capability."""
    import torch
    from vllm.platforms.interface import DeviceCapability, Platform

    major, minor = (int(x) for x in capability.split("."))

    class _Cuda:
        def __getattr__(self, name: str) -> Any:
            return getattr(plat, name)

        def is_cuda(self) -> bool:
            return True

        def is_rocm(self) -> bool:
            return False

        def get_device_capability(self, device_id: int = 0) -> Any:
            return DeviceCapability(major=major, minor=minor)

        def is_device_capability_family(self, capability: int, device_id: int = 0) -> bool:
            return Platform.is_device_capability_family.__func__(self, capability)  # type: ignore[attr-defined]

        def fp8_dtype(self) -> Any:
            return torch.float8_e4m3fn

    return _Cuda()


def one(model: dict[str, Any], device: dict[str, Any], tp: int, args: dict[str, Any],
        call: dict[str, Any]) -> dict[str, Any]:
    vo.setup()
    import torch

    entry = json.load(open(os.path.join(vo.MODELS, STEM + ".json")))
    config = dict(vo._as_read(vo._catalog_config(entry["repo_id"])))
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    config.update(architectures=[model["arch"]], index_n_heads=model["index_n_heads"])
    engine = {k: v for k, v in args.items() if k != "max_model_len"}
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(engine)
    kv = engine.pop("kv_cache_dtype", "auto")
    vo.EXTRA_ARGS.pop("kv_cache_dtype", None)
    with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, kv, args.get("max_model_len"))
    vo._init_group(tp, cfg)
    import vllm.envs as envs
    import vllm.model_executor.kernels.attention.dsa.fused_mqa_topk as fmt
    import vllm.model_executor.layers.sparse_attn_indexer as sai
    import vllm.utils.deep_gemm as dg
    import vllm.v1.attention.backends.mla.indexer as idx
    from vllm.model_executor.models.config import MODELS_CONFIG_MAP
    from vllm.utils.torch_utils import STR_DTYPE_TO_TORCH_DTYPE
    from vllm.v1.worker import workspace as ws

    set_current_vllm_config = vo._vllm_config("set_current_vllm_config")
    cuda = _device(sai.current_platform, device["capability"], device["sms"])
    for mod in (sai, fmt, dg, idx):
        mod.current_platform = cuda  # type: ignore[attr-defined]
    dg.mqa_logits_use_mx_scales.cache_clear()  # answered for the CPU platform while the config was built
    # the scheduler values the CUDA platform keeps (the CPU platform resolves its own)
    cfg.scheduler_config.max_num_seqs = args["max_num_seqs"]
    cfg.scheduler_config.max_num_batched_tokens = args["max_num_batched_tokens"]
    # the per-architecture config hook as it runs on this device (VllmConfig.try_verify_and_update_config)
    cfg.attention_config.indexer_logits_dtype = (args.get("attention_config") or {}).get("indexer_logits_dtype",
                                                                                          "auto")
    hook = MODELS_CONFIG_MAP.get(model["arch"])
    if hook is not None:
        import vllm.platforms as platforms

        real = platforms._current_platform  # type: ignore[attr-defined]
        platforms._current_platform = cuda  # type: ignore[attr-defined]
        try:
            hook.verify_and_update_config(cfg)
        finally:
            platforms._current_platform = real  # type: ignore[attr-defined]
    fmt.fused_mqa_topk_available = lambda: cuda.is_device_capability_family(100)  # type: ignore[assignment]
    fmt._sm_count = lambda index: device["sms"]  # type: ignore[assignment]
    torch.accelerator.current_device_index = lambda: 0  # type: ignore[assignment]

    class _Ctx:
        attn_metadata = None

    sai.get_forward_context = lambda: _Ctx()  # type: ignore[assignment]
    ws.init_workspace_manager(torch.device("meta"))
    torch.accelerator.empty_cache = lambda: None  # the workspace grows on the meta device; there is no cache
    hf = cfg.model_config.hf_config
    mnbt = cfg.scheduler_config.max_num_batched_tokens
    meta = torch.device("meta")
    topk_buffer = torch.empty(mnbt, hf.index_topk, dtype=torch.int32, device=meta)
    allocated: list[int] = []
    empty, zeros = torch.empty, torch.zeros

    nested: list[bool] = []

    def recording(fn: Any) -> Any:
        def alloc(*shape: Any, **kw: Any) -> Any:
            if nested:  # torch.zeros on the meta device allocates through torch.empty: one tensor
                return fn(*shape, **kw)
            nested.append(True)
            try:
                t = fn(*shape, **kw)
            finally:
                nested.pop()
            allocated.append(t.numel() * t.element_size())
            return t
        return alloc

    logits_name = cfg.attention_config.resolve_indexer_logits_dtype("float32")  # SparseAttnIndexer.__init__
    topk_backend = cfg.kernel_config.sparse_indexer_topk_backend
    dcp = cfg.parallel_config.decode_context_parallel_size
    with set_current_vllm_config(cfg):
        rows = idx.get_max_prefill_buffer_size(cfg)
        hidden = torch.empty(mnbt, hf.hidden_size, dtype=torch.bfloat16, device=meta)
        q = torch.empty(mnbt, hf.index_n_heads, hf.index_head_dim, dtype=torch.float8_e4m3fn, device=meta)
        weights = torch.empty(mnbt, hf.index_n_heads, dtype=torch.float32, device=meta)
        kv_cache = torch.empty(0, device=meta)
        manager = ws.current_workspace_manager()
        torch.empty, torch.zeros = recording(empty), recording(zeros)  # type: ignore[assignment]
        try:
            sai.sparse_attn_indexer(hidden, "model.layers.0.self_attn.indexer.k_cache", kv_cache,
                                    q, None, None, weights, 128, "ue8m0", hf.index_topk, hf.index_head_dim,
                                    cfg.model_config.max_model_len, rows, topk_buffer, False,
                                    call.get("use_pcp", False), False, "", False,
                                    dcp_world_size=dcp, topk_backend=topk_backend,
                                    logits_dtype=STR_DTYPE_TO_TORCH_DTYPE[logits_name])
        finally:
            torch.empty, torch.zeros = empty, zeros  # type: ignore[assignment]
    workspace = sum(manager._workspace_size_bytes(w) for w in manager._current_workspaces)
    # the fused scratch is allocated (and dropped) before the dense logits dummy, the last allocation
    transients = list(allocated)
    if workspace in transients:  # the workspace manager's own growth (counted in workspace_bytes)
        transients.remove(workspace)
    dummy, fused = transients[-1], transients[:-1]
    return {"model": entry["repo_id"], "architecture": model["arch"], "index_n_heads": hf.index_n_heads,
            "index_head_dim": hf.index_head_dim, "index_topk": hf.index_topk, "tp": tp,
            "compute_capability": device["capability"], "sm_count": device["sms"],
            "max_model_len": cfg.model_config.max_model_len, "max_num_seqs": cfg.scheduler_config.max_num_seqs,
            "max_num_batched_tokens": mnbt, "num_speculative_tokens": cfg.num_speculative_tokens,
            "kv_cache_dtype": cfg.cache_config.cache_dtype, "indexer_logits_dtype": logits_name,
            "sparse_indexer_topk_backend": topk_backend, "decode_context_parallel_size": dcp,
            "use_pcp": call.get("use_pcp", False),
            "max_logits_mb": envs.VLLM_SPARSE_INDEXER_MAX_LOGITS_MB,
            "max_decode_logits_mb": envs.VLLM_SPARSE_INDEXER_MAX_DECODE_LOGITS_MB,
            "use_fused_mqa_topk": envs.VLLM_USE_FUSED_MQA_TOPK, "batch_invariant": envs.VLLM_BATCH_INVARIANT,
            "max_prefill_buffer_rows": rows, "workspace_bytes": workspace,
            "dummy_logits_bytes": dummy, "fused_scratch_tensors": fused, "fused_scratch_bytes": sum(fused),
            "peak": "fused_scratch" if sum(fused) > dummy else "dummy_logits",
            "peak_bytes": max(dummy, sum(fused))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", type=int, default=None, help="(internal) run this case and print its row")
    a = ap.parse_args()
    if a.case is not None:
        model, device, tp, args, _env, call = CASES[a.case]
        vo.print_case_row(lambda: one(model, device, tp, args, call))
        return
    import importlib.metadata as md

    version = md.version("vllm")
    doc: dict[str, Any] = {"release": version, "cases": [], "produced_by": (
        f"vLLM {version} wheel, one process per case: EngineArgs.create_engine_config (tools/vllm_oracle.py _config) "
        "for DeepSeek-V3.2's catalog config (or its GLM-5-style variant: GlmMoeDsaForCausalLM, 32 indexer heads) "
        "with the case's fields and variables, a TP group of fake ranks, the platform answering as a CUDA device of "
        "the case's compute capability and SM count where the indexer code asks it (the architecture's "
        "verify_and_update_config re-run under it), then vllm/model_executor/layers/sparse_attn_indexer.py "
        "sparse_attn_indexer's profile-run branch on meta tensors, recording every torch.empty / torch.zeros it "
        "makes (the fused_mqa_topk scratch of vllm/model_executor/kernels/attention/dsa/fused_mqa_topk.py "
        "get_fused_mqa_topk_workspaces, then the dummy logits tensor). Run on CPU: VLLM_TARGET_DEVICE=cpu the "
        "vllm venv python tools/vllm_sparse_indexer_dummy_oracle.py --out FILE")}
    for i, (model, device, tp, args, env_set, call) in enumerate(CASES):
        row = vo.case_in_subprocess(__file__, a.out, i, env_set)
        row.update(engine_args=args, env=env_set, call=call)
        doc["cases"].append(row)
        print(i, row.get("error") or (row["dummy_logits_bytes"], row["fused_scratch_bytes"], row["peak"]),
              file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
