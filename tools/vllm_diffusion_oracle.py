"""vLLM's own --diffusion-config handling and DiffusionGemma model, run on a CPU machine: the oracle for what vramcalc
sizes for diffusion LLM serving (vramcalc/vllm/diffusion.py, the diffusion_gemma reader in
vramcalc/sources/hf_config.py).

Same venv and method as tools/vllm_oracle.py, at vLLM 0.34.0:

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_diffusion_oracle.py \
        --out tests/data/vllm_diffusion_oracle_v0.34.0.json --tp 1
    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_diffusion_oracle.py \
        --out tests/data/vllm_diffusion_oracle_v0.34.0.json --tp 2

and at vLLM 0.33.0 (/work/venvs/vllm-0.33.0, the same two runs) with VLLM_USE_V2_MODEL_RUNNER=1: 0.33.0 takes the V2
model runner by default where Triton is there, as on CUDA, but this CPU host has no Triton, and the V1 runner refuses
diffusion models (VllmConfig._validate_v1_model_runner). 0.33.0 sets the CUDA-graph sizes without
_split_cudagraph_capture_sizes (0.34.0), which the oracle then does not call.

The DiffusionGemma config is the text and vision config of google/diffusiongemma-26B-A4B-it as quoted in
github.com/lablup/mlxcel : src/models/diffusion_gemma/tests.rs REAL_CONFIG_SNIPPET (without the two keys that MLX
conversion adds, quantization and generation_config), written below.

- builds: at each TP, the VllmConfig (EngineArgs.create_engine_config) and the model class
  (DiffusionGemmaForConditionalGeneration, vllm/model_executor/models/diffusion_gemma.py) on the meta device, as
  tools/vllm_oracle.py does: the parameter bytes per rank (all, the vision tower's, the self-conditioning MLP's) and
  each attention layer's KV cache spec, FlashAttention as the CUDA backend, and vLLM's KV plan of a few budgets
  (tools/vllm_oracle.py _plan).
- cases (TP 1 only): --diffusion-config values (and --max-num-seqs, --max-num-batched-tokens, --max-model-len,
  --async-scheduling, --enforce-eager) through EngineArgs.create_engine_config (EngineArgs.create_diffusion_config,
  VllmConfig.__post_init__, DiffusionGemmaModelForBlockDiffusionConfig.verify_and_update_config): the diffusion
  config kept, num_speculative_tokens, uniform_decode_query_len, the scheduler class (with async scheduling taken as
  CUDA takes it: on unless --no-async-scheduling), max_num_seqs, max_num_batched_tokens, max_num_scheduled_tokens,
  num_lookahead_tokens; the CUDA-graph capture sizes as VllmConfig._set_cudagraph_sizes sets them on CUDA (run on
  the real config's scheduler and decode query length with a fresh CompilationConfig of the case's fields: the CPU
  platform turns CUDA graphs off; SM 9.0, not the data-centre Blackwell ceiling); and the bytes of the persistent
  per-request diffusion state the model runner allocates before the profile run (DiffusionGemmaRequestStates built
  on the meta device with max_num_seqs, canvas_length, the vocabulary, hidden size and the generation config's
  stability_threshold + 1, 1 here as published). A refusal is recorded in vLLM's words.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

_FULL = ["sliding_attention"] * 5 + ["full_attention"]
DIFFUSION_GEMMA: dict[str, Any] = {
    "architectures": ["DiffusionGemmaForBlockDiffusion"], "model_type": "diffusion_gemma", "canvas_length": 256,
    "eos_token_id": [1, 106, 50], "boi_token_id": 255999, "eoi_token_id": 258882, "image_token_id": 258880,
    "tie_word_embeddings": True, "vision_soft_tokens_per_image": 280,
    "vision_config": {
        "model_type": "gemma4_vision", "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
        "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 72, "global_head_dim": 72,
        "patch_size": 16, "pooling_kernel_size": 3, "rms_norm_eps": 1e-06, "standardize": True,
        "use_clipped_linears": False, "rope_parameters": {"rope_theta": 100.0, "rope_type": "default"}},
    "text_config": {
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 2, "dtype": "bfloat16", "eos_token_id": 1,
        "final_logit_softcapping": 30.0, "global_head_dim": 512, "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2816, "initializer_range": 0.02,
        "intermediate_size": 2112, "layer_types": _FULL * 5, "max_position_embeddings": 262144,
        "model_type": "diffusion_gemma_text", "moe_intermediate_size": 704, "num_attention_heads": 16,
        "num_experts": 128, "num_global_key_value_heads": 2, "num_hidden_layers": 30, "num_key_value_heads": 8,
        "pad_token_id": 0, "rms_norm_eps": 1e-06,
        "rope_parameters": {"full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0,
                                               "rope_type": "proportional"},
                            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}},
        "sliding_window": 1024, "tie_word_embeddings": True, "top_k_experts": 8,
        "use_bidirectional_attention": "vision", "vocab_size": 262144}}
# generation_config.json as the same snippet quotes it (read by the model runner, not by VllmConfig)
GENERATION = {"confidence_threshold": 0.005, "eos_token_id": [1, 106, 50], "max_denoising_steps": 48,
              "max_new_tokens": 256, "pad_token_id": 0,
              "sampler_config": {"_cls_name": "EntropyBoundSamplerConfig", "entropy_bound": 0.1},
              "stability_threshold": 1, "t_max": 0.8, "t_min": 0.4}

# (engine args); every case runs on DiffusionGemma unless "model" names a catalog stem
CASES: list[dict[str, Any]] = [
    {},  # no --diffusion-config: the model's canvas_length, max_num_seqs 8
    {"diffusion_config": {"canvas_length": 256}},
    {"diffusion_config": {"canvas_length": 16}},
    {"diffusion_config": {"canvas_length": 32, "max_denoising_steps": 24}},
    {"diffusion_config": {"canvas_length": 64}, "max_num_seqs": 4},
    {"diffusion_config": {"canvas_length": 64}, "max_num_seqs": 127},
    {"diffusion_config": {"canvas_length": 64}, "max_num_seqs": 128},
    {"diffusion_config": {"canvas_length": 64}, "max_num_seqs": 256},
    {"diffusion_config": {"canvas_length": 128}, "max_num_seqs": 16},
    {"diffusion_config": {"canvas_length": 512}, "max_num_seqs": 2},
    {"diffusion_config": {"canvas_length": 256}, "max_num_seqs": 4, "max_num_batched_tokens": 2048},
    {"diffusion_config": {"canvas_length": 4096}, "max_num_batched_tokens": 2048},  # canvas above the token budget
    {"diffusion_config": {"canvas_length": 16384}, "max_model_len": 8192},  # canvas above max_model_len
    {"diffusion_config": {"canvas_length": 256}, "max_model_len": 32768},
    {"diffusion_config": {"canvas_length": 256}, "async_scheduling": False},
    {"diffusion_config": {"canvas_length": 256}, "enforce_eager": True},
    {"diffusion_config": {"canvas_length": 256}, "max_cudagraph_capture_size": 1024},
    {"diffusion_config": {"canvas_length": 8}, "max_num_seqs": 64},
    {"diffusion_config": {"canvas_length": 256}, "attention_backend": "FLASHINFER"},  # refused for DiffusionGemma
    {"diffusion_config": {"canvas_length": 0}},
    {"diffusion_config": {"canvas_length": -4}},
    {"diffusion_config": {"canvas_length": 16, "block_length": 4}},
    {"diffusion_config": {}},
    {"diffusion_config": {"max_denoising_steps": 8}},
    # a model that is not a diffusion LLM: VllmConfig takes the flag as it is
    {"model": "Qwen__Qwen3-8B", "diffusion_config": {"canvas_length": 16}},
    {"model": "Qwen__Qwen3-8B", "diffusion_config": {"canvas_length": 16}, "max_num_seqs": 256},
]
BASE_ARGS = {"max_model_len": 8192, "max_num_batched_tokens": 8192}
MEMORIES = [0.05, 2.0, 16.0]  # KV budgets (GiB) the builds plan, as tools/vllm_oracle.py does


def _model_dir(d: str, stem: str | None) -> str:
    path = os.path.join(d, stem or "diffusion_gemma")
    os.makedirs(path, exist_ok=True)
    if stem is None:
        json.dump(DIFFUSION_GEMMA, open(os.path.join(path, "config.json"), "w"))
        json.dump(GENERATION, open(os.path.join(path, "generation_config.json"), "w"))
    else:
        entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
        json.dump(vo._catalog_config(entry["repo_id"]), open(os.path.join(path, "config.json"), "w"))
    return path


def _engine(path: str, args: dict[str, Any], tp: int = 1) -> Any:
    import torch
    from vllm.engine.arg_utils import EngineArgs

    torch.cpu._is_avx512_bf16_supported = lambda: False
    kw: dict[str, Any] = dict(model=path, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                              distributed_executor_backend="uni" if tp == 1 else "mp")
    kw.update(BASE_ARGS)
    kw.update({k: v for k, v in args.items() if k != "model"})
    if "async_scheduling" not in args:  # CUDA's default (the CPU platform turns it off)
        kw["async_scheduling"] = True
    return EngineArgs(**kw).create_engine_config()


def _cuda_sizes(cfg: Any, args: dict[str, Any]) -> dict[str, Any]:
    """VllmConfig._set_cudagraph_sizes as CUDA runs it, on the real config's scheduler and decode query length."""
    from vllm.config.compilation import CompilationConfig, CUDAGraphMode
    from vllm.config.vllm import VllmConfig

    if args.get("enforce_eager"):
        return {"sizes": [], "max_cudagraph_capture_size": None, "prefill_token_sizes": [], "decode_request_sizes": []}
    cc = CompilationConfig(**{k: args[k] for k in ("cudagraph_capture_sizes", "max_cudagraph_capture_size")
                              if k in args})
    cc.cudagraph_mode = CUDAGraphMode.FULL_AND_PIECEWISE
    class Stand(SimpleNamespace):  # VllmConfig's own methods, on the fields given
        def __getattr__(self, name: str) -> Any:
            attr = getattr(VllmConfig, name)
            return attr.__get__(self) if callable(attr) else attr

    ns = Stand(model_config=SimpleNamespace(enforce_eager=False), compilation_config=cc,
                         scheduler_config=cfg.scheduler_config, parallel_config=cfg.parallel_config,
                         performance_mode=cfg.performance_mode, speculative_config=cfg.speculative_config,
                         num_speculative_tokens=cfg.num_speculative_tokens,
                         uniform_decode_query_len=cfg.uniform_decode_query_len)
    VllmConfig._set_cudagraph_sizes(ns)  # type: ignore[arg-type]
    return {"sizes": list(cc.cudagraph_capture_sizes or []), "max_cudagraph_capture_size": cc.max_cudagraph_capture_size,
            "prefill_token_sizes": list(getattr(cc, "prefill_cudagraph_capture_token_sizes", None) or []),
            "decode_request_sizes": list(getattr(cc, "decode_cudagraph_capture_request_sizes", None) or [])}


def _state_bytes(cfg: Any) -> int | None:
    """DiffusionGemmaRequestStates (vllm/model_executor/models/diffusion_gemma.py) on the meta device."""
    import torch
    from vllm.model_executor.models.diffusion_gemma import DiffusionGemmaRequestStates

    if not cfg.model_config.is_diffusion or cfg.diffusion_config is None or not cfg.diffusion_config.canvas_length:
        return None
    text = cfg.model_config.hf_text_config
    s = DiffusionGemmaRequestStates(
        max_num_reqs=cfg.scheduler_config.max_num_seqs, canvas_length=cfg.diffusion_config.canvas_length,
        vocab_size=cfg.model_config.get_vocab_size(),
        max_denoising_steps=cfg.diffusion_config.max_denoising_steps or GENERATION["max_denoising_steps"],
        device=torch.device("meta"), hidden_size=text.hidden_size,
        stability_threshold=GENERATION["stability_threshold"] + 1)
    return sum(t.numel() * t.element_size() for t in vars(s).values() if isinstance(t, torch.Tensor))


def _case(args: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        cfg = _engine(_model_dir(d, args.get("model")), args)
        dc = cfg.diffusion_config
        sc = cfg.scheduler_config
        return {
            "engine_args": args, "model": args.get("model") and json.load(open(os.path.join(
                vo.MODELS, args["model"] + ".json")))["repo_id"] or "google/diffusiongemma-26B-A4B-it",
            "is_diffusion": bool(cfg.model_config.is_diffusion),
            "diffusion_config": None if dc is None else {"canvas_length": dc.canvas_length,
                                                         "max_denoising_steps": dc.max_denoising_steps},
            "num_speculative_tokens": cfg.num_speculative_tokens,
            "uniform_decode_query_len": cfg.uniform_decode_query_len,
            "num_lookahead_tokens": cfg.num_lookahead_tokens,
            "scheduler_cls": sc.scheduler_cls if isinstance(sc.scheduler_cls, str) or sc.scheduler_cls is None
            else f"{sc.scheduler_cls.__module__}.{sc.scheduler_cls.__name__}",
            "async_scheduling": sc.async_scheduling, "max_num_seqs": sc.max_num_seqs,
            "max_num_batched_tokens": sc.max_num_batched_tokens,
            "max_num_scheduled_tokens": getattr(sc, "max_num_scheduled_tokens", None),
            "max_model_len": cfg.model_config.max_model_len,
            "cudagraph": _cuda_sizes(cfg, args),
            "diffusion_state_bytes": _state_bytes(cfg)}


def _params(tp: int, args: dict[str, Any]) -> int:
    """The parameter bytes per rank of the model built with `args` (the tower's modalities at 0, or
    --language-model-only: vllm/model_executor/models/interfaces.py SupportsMultiModal._mark_tower_model)."""
    from vllm.model_executor.model_loader.utils import initialize_model

    with tempfile.TemporaryDirectory() as d:
        cfg = _engine(_model_dir(d, None), args, tp)
        with vo.meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
        return sum(p.numel() * p.element_size() for p in model.parameters())


TOWER_ARGS = [{"limit_mm_per_prompt": {"image": 0, "video": 0}}, {"limit_mm_per_prompt": {"image": 0}},
              {"language_model_only": True}]


def _build(tp: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        cfg = _engine(_model_dir(d, None), {}, tp)
        model, _ = vo.meta_engine(cfg, tp)
        specs = vo._specs(cfg)
        params = {n: p.numel() * p.element_size() for n, p in model.named_parameters()}
        return {"tp": tp, "architecture": cfg.model_config.architecture,
                "param_bytes_per_rank": sum(params.values()),
                "vision_bytes_per_rank": sum(b for n, b in params.items()
                                             if n.startswith(("vision_tower.", "embed_vision."))),
                "self_conditioning_bytes_per_rank": sum(b for n, b in params.items()
                                                        if n.startswith("self_conditioning.")),
                "buffer_bytes_per_rank": sum(b.numel() * b.element_size() for b in model.buffers()),
                "cache_block_size": cfg.cache_config.block_size, "max_model_len": cfg.model_config.max_model_len,
                "max_num_batched_tokens": cfg.scheduler_config.max_num_batched_tokens,
                "async_scheduling": cfg.scheduler_config.async_scheduling,
                "layers": {n: vo._layer_row(s) for n, s in specs.items()},
                "plans": [vo._plan(cfg, specs, int(gib * vo.GIB)) for gib in MEMORIES],
                "tower_builds": [{"engine_args": a, "param_bytes_per_rank": _params(tp, a)} for a in TOWER_ARGS]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm

    doc: dict[str, Any] = {
        "release": vllm.__version__,
        "produced_by": f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu"
        + (", VLLM_USE_V2_MODEL_RUNNER=1" if os.environ.get("VLLM_USE_V2_MODEL_RUNNER") == "1" else "")
        + "), tools/vllm_diffusion_oracle.py: "
        "EngineArgs(diffusion_config=...).create_engine_config per case (scheduler, speculative-token count, CUDA "
        "graph sizes as VllmConfig._set_cudagraph_sizes sets them on CUDA, the runner's DiffusionGemmaRequestStates "
        "built on the meta device), and DiffusionGemmaForConditionalGeneration built on the meta device per TP "
        "(parameter bytes per rank, KV cache specs with FlashAttention as the CUDA backend)",
        "config": DIFFUSION_GEMMA, "generation_config": GENERATION,
        "config_source": "google/diffusiongemma-26B-A4B-it's text and vision config as quoted in github.com/lablup/"
        "mlxcel : src/models/diffusion_gemma/tests.rs (REAL_CONFIG_SNIPPET, the MLX conversion's quantization and "
        "generation_config keys left out; the latter written as generation_config.json)",
        "base_engine_args": BASE_ARGS, "builds": [], "cases": [], "refused": []}
    if os.path.exists(a.out):  # one TP per run (a second TP group in one process fails): the runs add up
        old = json.load(open(a.out))
        doc["builds"], doc["cases"], doc["refused"] = old["builds"], old["cases"], old["refused"]
    doc["builds"] = [b for b in doc["builds"] if b["tp"] != a.tp]
    with contextlib.redirect_stdout(io.StringIO()):
        doc["builds"].append(_build(a.tp))
    print(f"build tp{a.tp}: ok", file=sys.stderr)
    if a.tp == 1:
        doc["cases"], doc["refused"] = [], []
        for args in CASES:
            vo.record_case(doc, a.out, "refused", {"engine_args": args}, lambda: _case(args), json.dumps(args))
    doc["builds"].sort(key=lambda b: b["tp"])
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
