"""Weights per rank under vLLM serve flags and VLLM_* variables that change how a layer is sharded, from vLLM's own
model classes built on the meta device on a CPU machine (tools/vllm_oracle.py's builder): tests/data/
vllm_weight_env_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_weight_env_oracle.py \
        --out tests/data/vllm_weight_env_oracle_v0.33.0.json

Each case names a catalog model, the TP degree, the EngineArgs fields (`vllm serve` flags as EngineArgs holds them)
and the environment variables set; each runs in a process of its own, as vLLM reads its variables once (vllm/envs.py).
`cuda_class` builds the class the CUDA platform resolves where the CPU one resolves another: vLLM 0.33.0
vllm/models/deepseek_v32/__init__.py imports nvidia/model.py's DeepseekV32ForCausalLM only when
current_platform.is_cuda(), the generic deepseek_v2.py DeepseekV3ForCausalLM otherwise. The row is the parameter
and buffer bytes of rank 0 and, per tensor name, the shapes of the tensors named in `watch`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

# (catalog file stem, TP, EngineArgs fields, environment, cuda_class)
CASES: list[tuple[str, int, dict[str, Any], dict[str, str], bool]] = [
    # --dcp-q-replicate / VLLM_DCP_Q_REPLICATE: the MLA query projection sharded over TP / DCP ranks
    # (model_executor/models/deepseek_v2.py DeepseekV2MLAAttention, layers/linear.py DCPGroupColumnParallelLinear)
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"decode_context_parallel_size": 2}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 2, {"decode_context_parallel_size": 2, "dcp_q_replicate": True}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 2, "dcp_q_replicate": True}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 4, "dcp_q_replicate": True}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 2}, {"VLLM_DCP_Q_REPLICATE": "1"}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 2, "dcp_q_replicate": True},
     {"VLLM_DCP_Q_REPLICATE": "0"}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"dcp_q_replicate": True}, {}, False),
    # the baselines: the same TP and DCP without the switch
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 2}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {"decode_context_parallel_size": 4}, {}, False),
    ("deepseek-ai__DeepSeek-V2-Lite", 4, {}, {}, False),
    ("deepseek-ai__DeepSeek-V3", 8, {"decode_context_parallel_size": 2}, {}, False),
    ("deepseek-ai__DeepSeek-V3", 8, {"decode_context_parallel_size": 8}, {}, False),
    ("deepseek-ai__DeepSeek-V3", 8, {"decode_context_parallel_size": 8, "dcp_q_replicate": True}, {}, False),
    ("deepseek-ai__DeepSeek-V3", 8, {"decode_context_parallel_size": 2, "dcp_q_replicate": True}, {}, False),
    ("moonshotai__Kimi-K2-Instruct", 8, {"decode_context_parallel_size": 4, "dcp_q_replicate": True}, {}, False),
    ("moonshotai__Kimi-K2-Instruct", 8, {"decode_context_parallel_size": 4}, {}, False),
    # VLLM_REPLICATE_EMBED: the input embedding whole on every rank (model_executor/layers/fused_embed_norm.py
    # make_input_embedding, built by models/deepseek_v32/nvidia/model.py)
    ("deepseek-ai__DeepSeek-V3.2", 8, {}, {}, True),
    ("deepseek-ai__DeepSeek-V3.2", 8, {}, {"VLLM_REPLICATE_EMBED": "1"}, True),
    ("deepseek-ai__DeepSeek-V3.2", 4, {}, {"VLLM_REPLICATE_EMBED": "true"}, True),
    ("deepseek-ai__DeepSeek-V3.2", 4, {}, {}, True),
    ("deepseek-ai__DeepSeek-V3.2", 1, {}, {"VLLM_REPLICATE_EMBED": "1"}, True),
    ("deepseek-ai__DeepSeek-V3.2", 1, {}, {}, True),
    # the generic class (what the CPU platform builds) has no replicated embedding: the variable changes nothing
    ("deepseek-ai__DeepSeek-V3", 8, {}, {"VLLM_REPLICATE_EMBED": "1"}, False),
    ("deepseek-ai__DeepSeek-V3", 8, {}, {}, False),
    # --model-impl transformers: vLLM's Transformers backend (model_executor/models/transformers/), against the
    # model's own vLLM class (not modelled: the note in data/command_flags.json cites these rows)
    ("Qwen__Qwen3-0.6B", 1, {"model_impl": "transformers"}, {}, False),
    ("Qwen__Qwen3-0.6B", 1, {}, {}, False),
    ("Qwen__Qwen3-8B", 2, {"model_impl": "transformers"}, {}, False),
    ("Qwen__Qwen3-8B", 2, {}, {}, False),
    ("Qwen__Qwen3-30B-A3B", 2, {"model_impl": "transformers"}, {}, False),
    ("Qwen__Qwen3-30B-A3B", 2, {}, {}, False),
]

WATCH = ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_b_proj.weight")


def one(stem: str, tp: int, args: dict[str, Any], cuda_class: bool) -> dict[str, Any]:
    import vllm_oracle as vo

    vo.setup()
    if cuda_class:  # what vllm/models/deepseek_v32/__init__.py imports on CUDA
        import vllm.models.deepseek_v32 as v32
        from vllm.models.deepseek_v32.nvidia import model as nv

        v32.DeepseekV32ForCausalLM = nv.DeepseekV32ForCausalLM  # type: ignore[attr-defined]
        # the CPU platform refuses sparse MLA when the layers pick their backend (platforms/cpu.py
        # get_attn_backend_cls); the layers take CUDA's FlashMLA sparse one, whose choice holds no weights
        from vllm.platforms.cpu import CpuPlatform

        pick = CpuPlatform.get_attn_backend_cls.__func__  # type: ignore[attr-defined]

        def backend(cls: Any, selected_backend: Any, attn_selector_config: Any, num_heads: Any = None) -> str:
            if attn_selector_config.use_sparse:
                return "vllm.v1.attention.backends.mla.flashmla_sparse.FlashMLASparseBackend"
            return pick(cls, selected_backend, attn_selector_config, num_heads)

        CpuPlatform.get_attn_backend_cls = classmethod(backend)  # type: ignore[method-assign,assignment]
        # its attention impl reserves workspace (not the model's parameters) as GPUModelRunner.__init__ sets it up
        import torch
        from vllm.v1.worker.workspace import init_workspace_manager

        init_workspace_manager(torch.device("meta"))
        torch.accelerator.empty_cache = lambda: None  # the workspace grows on the meta device; there is no cache
    from vllm.model_executor.model_loader import utils

    built: list[Any] = []
    init = utils.initialize_model

    def keep(*a: Any, **k: Any) -> Any:
        built.append(init(*a, **k))
        return built[-1]

    utils.initialize_model = keep
    vo.EXTRA_ARGS.update(args)
    path = os.path.join(vo.MODELS, stem + ".json")
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        row = vo.run_one(path, tp, "auto", [], None)
    model = built[-1]
    shapes = {n: list(p.shape) for n, p in model.named_parameters() if n in WATCH}
    # a quantized checkpoint whose CUDA kernels the CPU build cannot pick is built unquantized (run_one): its
    # bytes are then those of the model dtype, recorded as built_bytes_rank0 with built_unquantized
    return {k: row[k] for k in ("model", "tp", "weights_bytes_rank0", "buffer_bytes_rank0", "use_mla")} | {
        "built_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters()),
        "built_buffer_bytes_rank0": sum(b.numel() * b.element_size() for b in model.buffers()),
        "built_unquantized": bool(row.get("built_unquantized")), "dtype": row["dtype"],
        "shapes": shapes, "model_class": type(model).__module__ + "." + type(model).__name__}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", type=int, default=None, help="(internal) run this case and print its row")
    a = ap.parse_args()
    if a.case is not None:
        stem, tp, args, _env, cuda = CASES[a.case]
        vo.print_case_row(lambda: one(stem, tp, args, cuda))
        return
    import importlib.metadata as md

    version = md.version("vllm")
    doc: dict[str, Any] = {"release": version, "cases": [], "produced_by": (
        f"vLLM {version} wheel, tools/vllm_oracle.py's builder (EngineArgs.create_engine_config, initialize_model on "
        "the meta device under set_current_vllm_config in a TP group of fake ranks) with each case's EngineArgs "
        "fields and environment variables set, one process per case; the parameter and buffer bytes of rank 0. "
        "cuda_class: vllm/models/deepseek_v32/nvidia/model.py's DeepseekV32ForCausalLM, the class "
        "vllm/models/deepseek_v32/__init__.py imports on CUDA. Run on CPU: VLLM_TARGET_DEVICE=cpu the vllm "
        f"{version} venv python tools/vllm_weight_env_oracle.py --out FILE")}
    old = json.load(open(a.out))["cases"] if os.path.exists(a.out) else []

    def key(stem: str, tp: int, args: dict[str, Any], env: dict[str, str], cuda: bool) -> str:
        return json.dumps([stem, tp, args, env, cuda], sort_keys=True)

    kept = {key(c["catalog"], c["tp"], c["engine_args"], c["env"], c["cuda_class"]): c for c in old}
    for i, (stem, tp, args, env, cuda) in enumerate(CASES):
        if key(stem, tp, args, env, cuda) in kept:  # a case the file holds already is kept as it is
            doc["cases"].append(kept[key(stem, tp, args, env, cuda)])
            continue
        row = vo.case_in_subprocess(__file__, a.out, i, env)
        row.update(catalog=stem, tp=tp, engine_args=args, env=env, cuda_class=cuda)
        doc["cases"].append(row)
        print(stem, tp, args, env, cuda, {k: row.get(k) for k in ("weights_bytes_rank0", "error")}, file=sys.stderr)
        _write(a.out, doc)
    _write(a.out, doc)


def _write(path: str, doc: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
