"""vLLM's own figures for the model types vramcalc reads exactly since its generic-fallback survey (LFM2, MiniCPM3,
Kimi-Linear): parameters and weight bytes of rank 0, each layer's KV cache spec (attention page, or a recurrent
layer's state shapes, dtypes and page) and the KV plan vLLM makes for given KV memory budgets, at TP 1 and TP 2.

Each config is the Hub file kept in tests/data/vllm_generic_fallback_oracle_v0.34.0.json (with its source). For each
case it builds vLLM's VllmConfig (EngineArgs.create_engine_config through tools/vllm_oracle.py _config), the model
class on the meta device (tools/vllm_oracle.py meta_engine, a TP group of fake ranks), takes the layers' specs as
GPUModelRunner.get_kv_cache_spec does (tools/vllm_oracle.py _specs) and plans each budget with
kv_cache_planning.get_global_kv_cache_groups / get_kv_cache_configs and kv_cache_utils.get_kv_cache_capacity
(tools/vllm_oracle.py _plan). A case vLLM refuses (Kimi-Linear with --kda-prefill-backend flashinfer, with
--mamba-ssm-cache-dtype float16 or bfloat16) is recorded with its error. The CPU platform is told the host has AMX
tiles: without them it gives an MLA model (Kimi-Linear) its reference CPU MLA backend and turns prefix caching and
chunked prefill off (vllm/platforms/cpu.py CpuPlatform.check_and_update_config), which CUDA does not.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_hybrid_readers_oracle.py \
        --out tests/data/vllm_hybrid_readers_oracle_v0.34.0.json [--only NAME...]

Each case runs in its own interpreter (--case), as its TP group and environment are process-wide.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SURVEY = os.path.join(HERE, "..", "tests", "data", "vllm_generic_fallback_oracle_v0.34.0.json")
MAX_LEN = 4096
MEMORIES = [1.0, 8.0, 40.0]  # GiB of KV memory handed to the planner
# name, TP, EngineArgs fields, environment (vLLM's own switches the case needs on this machine)
CASES: list[tuple[str, int, dict[str, Any], dict[str, str]]] = [
    ("LFM2-1.2B", 1, {}, {}),
    ("LFM2-1.2B", 2, {}, {}),
    ("LFM2-1.2B", 1, {"enable_prefix_caching": False}, {}),
    ("MiniCPM3-4B", 1, {}, {}),
    ("MiniCPM3-4B", 2, {}, {}),
    ("Kimi-Linear-48B-A3B-Instruct", 1, {}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    ("Kimi-Linear-48B-A3B-Instruct", 2, {}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    ("Kimi-Linear-48B-A3B-Instruct", 1, {"enable_prefix_caching": False}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    # a KDA prefill kernel other than Triton: refused as the model is built
    ("Kimi-Linear-48B-A3B-Instruct", 1, {"kda_prefill_backend": "flashinfer"}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    # --mamba-ssm-cache-dtype: the hybrid page is sized with it (KimiLinearForCausalLM.get_mamba_state_dtype_from_config)
    # but Kimi-Linear's KDA layers keep a float32 recurrent state (KimiGatedDeltaNetAttention.get_state_dtype)
    ("Kimi-Linear-48B-A3B-Instruct", 1, {"mamba_ssm_cache_dtype": "bfloat16"}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    ("Kimi-Linear-48B-A3B-Instruct", 1, {"mamba_ssm_cache_dtype": "float16"}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
    ("Kimi-Linear-48B-A3B-Instruct", 1, {"mamba_ssm_cache_dtype": "float32"}, {"VLLM_KIMI_K3_GEMM_AR": "0"}),
]
# cases on an edited copy of a survey config: name, TP, the keys set in the config
EDITED: list[tuple[str, int, dict[str, Any]]] = [
    # vLLM's Lfm2ForCausalLM ties lm_head to the embedding whatever the config says
    ("LFM2-1.2B", 1, {"tie_embedding": False, "tie_word_embeddings": False}),
]
ALL = [(n, tp, ea, env, {}) for n, tp, ea, env in CASES] + [(n, tp, {}, {}, edit) for n, tp, edit in EDITED]


class _NoStream:
    """torch.cuda.Stream / Event on a machine without CUDA (as tools/vllm_generic_fallback_oracle.py): side streams
    some classes make at construction hold no memory and nothing runs on them here."""

    def __init__(self, *a: Any, **k: Any) -> None:
        pass


def _survey_config(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = json.load(open(SURVEY))
    case = next(c for c in doc["cases"] if c["name"] == name)
    return case["config"], case["source"]


def _spec_row(spec: Any) -> dict[str, Any]:
    row = vo._layer_row(spec)
    if hasattr(spec, "shapes"):  # MambaSpec: the per-sequence states
        row.update(shapes=[list(s) for s in spec.shapes], dtypes=[str(d).replace("torch.", "") for d in spec.dtypes],
                   state_bytes=spec.real_page_size_bytes, mamba_type=str(spec.mamba_type.name),
                   num_speculative_blocks=spec.num_speculative_blocks)
    return row


def run_case(i: int) -> dict[str, Any]:
    name, tp, engine_args, env, edit = ALL[i]
    os.environ.update(env)
    vo.setup()
    import torch

    torch.cuda.Stream = _NoStream  # type: ignore[assignment, misc]
    torch.cuda.Event = _NoStream  # type: ignore[assignment, misc]
    # an MLA model on a CPU without AMX tiles gets the reference CPU MLA backend, for which the CPU platform turns
    # prefix caching and chunked prefill off and sets block_size 16 (vllm/platforms/cpu.py
    # CpuPlatform.check_and_update_config); CUDA does neither. With AMX reported the CPU platform leaves them as
    # CUDA has them (the oracle runs no kernel; meta_engine takes CUDA's backends)
    torch.cpu._is_amx_tile_supported = lambda: True
    config, _ = _survey_config(name)
    config = {**config, **edit}
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(engine_args)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", MAX_LEN)
        model, backends = vo.meta_engine(cfg, tp)
        specs = vo._specs(cfg)
        row: dict[str, Any] = {
            "architecture": cfg.model_config.architectures[0], "model_class": type(model).__name__,
            "dtype": str(cfg.model_config.dtype).replace("torch.", ""), "attention_backends": backends,
            "max_model_len": cfg.model_config.max_model_len,
            "max_num_batched_tokens": cfg.scheduler_config.max_num_batched_tokens,
            "async_scheduling": cfg.scheduler_config.async_scheduling,
            "cache_block_size": cfg.cache_config.block_size,
            "mamba_block_size": cfg.cache_config.mamba_block_size,
            "mamba_cache_mode": cfg.cache_config.mamba_cache_mode,
            "enable_prefix_caching": cfg.cache_config.enable_prefix_caching,
            "params_rank0": sum(p.numel() for p in model.parameters()),
            "weights_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters()),
            "buffer_bytes_rank0": sum(b.numel() * b.element_size() for b in model.buffers()),
            # of those, the rotary embeddings' cos/sin caches (the rest: each Attention layer's scale scalars)
            "cos_sin_cache_bytes_rank0": sum(b.numel() * b.element_size() for n, b in model.named_buffers()
                                             if n.endswith("cos_sin_cache")),
            "layers": {k: _spec_row(v) for k, v in specs.items()},
            "plans": [vo._plan(cfg, specs, int(g * vo.GIB)) for g in MEMORIES]}
        del model
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--case", type=int)
    a = ap.parse_args()
    if a.case is not None:
        vo.print_case_row(lambda: run_case(a.case))
        return
    old = json.load(open(a.out)) if os.path.exists(a.out) else {"cases": []}
    done = {(c["name"], c["tp"], json.dumps(c["engine_args"], sort_keys=True),
             json.dumps(c.get("config_edit", {}), sort_keys=True)): c for c in old["cases"]}
    rows = []
    release = old.get("release")
    for i, (name, tp, engine_args, env, edit) in enumerate(ALL):
        key = (name, tp, json.dumps(engine_args, sort_keys=True), json.dumps(edit, sort_keys=True))
        if a.only and name not in a.only and key in done:
            rows.append(done[key])
            continue
        config, source = _survey_config(name)
        out = subprocess.run([sys.executable, __file__, "--case", str(i)], capture_output=True, text=True,
                             env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"})
        line = next((x for x in out.stdout.splitlines() if x.startswith("ROW ")), None)
        if line is None:
            sys.exit(f"{name} tp{tp}: no row\n{out.stderr[-3000:]}")
        result = json.loads(line[4:])
        row = {"name": name, "model_type": config["model_type"], "tp": tp, "engine_args": engine_args, "env": env,
               "source": source, **({"config_edit": edit} if edit else {}),
               "vllm" if "error" not in result else "error":
               result if "error" not in result else result["error"]}
        rows.append(row)
        print(name, tp, engine_args, result.get("error") or (result["params_rank0"], result["plans"][-1]),
              file=sys.stderr)
    import vllm

    release = vllm.__version__
    doc = {"release": release, "max_model_len": MAX_LEN, "memories_gib": MEMORIES, "cases": rows,
           "produced_by": (
               f"vLLM {release} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_hybrid_readers_oracle.py: each Hub "
               "config of tests/data/vllm_generic_fallback_oracle_v0.34.0.json (its source kept in the row; "
               "config_edit: the keys a case sets in a copy of it) through EngineArgs(model=<the config>, "
               f"load_format=dummy, tensor_parallel_size=<tp>, max_model_len={MAX_LEN}, <engine_args>)"
               ".create_engine_config(), the CPU platform told the host has AMX tiles so that it keeps prefix caching, "
               "chunked prefill and the block size for an MLA model as CUDA does (vllm/platforms/cpu.py); the model "
               "class built on the meta device with a TP group of fake ranks (tools/vllm_oracle.py meta_engine); "
               "params_rank0 / weights_bytes_rank0 / buffer_bytes_rank0 the sums over its parameters and buffers "
               "(cos_sin_cache_bytes_rank0: the rotary caches among them); layers = each layer's KV cache spec "
               "(GPUModelRunner.get_kv_cache_spec; a MambaSpec with its state shapes, dtypes and unpadded state_bytes); "
               "plans = kv_cache_planning.get_global_kv_cache_groups / get_kv_cache_configs and "
               "kv_cache_utils.get_kv_cache_capacity for each KV memory budget (tools/vllm_oracle.py _plan); error = "
               "what vLLM raised, in its words; torch.cuda.Stream and Event stubbed (side streams hold no memory)")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
