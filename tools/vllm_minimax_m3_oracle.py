"""MiniMax-M3 as vLLM v0.34.0 builds it, on a CPU machine: tests/data/vllm_minimax_m3_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_minimax_m3_oracle.py \
        --out tests/data/vllm_minimax_m3_oracle_v0.34.0.json

For the catalog's MiniMaxAI/MiniMax-M3 config (vramcalc/data/models/MiniMaxAI__MiniMax-M3.json) at each TP degree
(one process per degree: the fake process group's world size is fixed once made), tools/vllm_oracle.py builds the
engine config (EngineArgs.create_engine_config) and the model on the meta device (meta_engine), then records, per
case (KV cache dtype, max_model_len):
- the parameters on rank 0: the text model's (MiniMaxM3SparseForCausalLM, the language_model of
  MiniMaxM3SparseForConditionalGeneration) element count and bytes, the vision tower's (MiniMaxVLVisionModel, built
  from transformers' MiniMaxM3VLVisionConfig defaults: the catalog copy has no vision_config) and the whole model's
  bytes, and the rotary cos/sin cache bytes;
- every KV cache layer spec as GPUModelRunner.get_kv_cache_spec takes them (tools/vllm_oracle.py _specs): the
  full-attention K/V of every layer and the MSA layers' index-key caches (MLAAttentionSpec, one head);
- vLLM's own KV planning for each memory (tools/vllm_oracle.py _plan: groups, blocks, tokens, concurrency).
A case with --block-size sets it after tools/vllm_oracle.py cuda_like, as a user-given CacheConfig.block_size.
rocm_class_cases: the default case built with the ROCm implementation (vllm/models/minimax_m3/amd/model.py, see
_rocm_class) at each TP degree.
mega_moe_refusals: --moe-backend deep_gemm_mega_moe (with and without expert parallelism) refused while the model is
built, in vLLM's words.
score_cases: the Triton indexer's prefill score tensor, as vLLM's minimax_m3_index_score asks torch.empty for it
(score_cases below), which the profile run never allocates (vramcalc warns vllm.minimax_m3.indexer_scores).

The CPU build cannot import the model's CUDA kernel packages (cutlass, cuda-python, quack): they are stood in by
empty modules, as nothing here runs a kernel; its CPU MoE backend refuses the SwiGLU-OAI experts, so the unquantized
MoE backend is taken as CUDA's Triton one (the parameters' shapes do not depend on it for an unquantized model).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any
from unittest import mock

sys.path.insert(0, os.path.dirname(__file__))

STEM = "MiniMaxAI__MiniMax-M3"
TPS = (1, 2, 4, 8)
# (KV cache dtype, max_model_len, --block-size or None)
CASES = [("auto", 65536, None), ("fp8", 65536, None), ("auto", 1048576, None), ("auto", 65536, 256)]
MEMORIES = [40.0, 200.0]


class _Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty stand-ins for the CUDA-only kernel packages the model's modules import."""

    ROOTS = {"cutlass", "cuda", "quack"}

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> Any:
        m = mock.MagicMock(name=spec.name)
        m.__path__ = []
        m.__spec__ = spec
        return m

    def exec_module(self, module: Any) -> None:
        pass


def _prepare() -> Any:
    import tvm_ffi  # noqa: F401  (imported before the stand-ins: it probes for cuda-python itself)
    import xgrammar  # noqa: F401

    sys.meta_path.insert(0, _Absent())
    import vllm_oracle as vo

    vo.setup()
    import vllm.model_executor.layers.fused_moe.unquantized_fused_moe_method as um
    from vllm.model_executor.layers.fused_moe.oracle import unquantized as uo

    select = um.select_unquantized_moe_backend

    def cuda_select(moe_config: Any) -> Any:
        try:
            return select(moe_config=moe_config)
        except NotImplementedError:
            triton = uo.UnquantizedMoeBackend.TRITON
            return triton, uo.backend_to_kernel_cls(triton)[0]

    um.select_unquantized_moe_backend = cuda_select
    return vo


def _rocm_class() -> None:
    """Build the ROCm implementation (vllm/models/minimax_m3/amd/model.py) in place of the NVIDIA one the CPU build
    picks: vllm/platforms/rocm.py reads the GPU's arch while it is imported (answered as gfx950, MI355X), its
    AITER / FlyDSL / MoRI kernel packages are stood in like the CUDA ones; the platform stays the CPU one."""
    import types

    import torch

    _Absent.ROOTS |= {"aiter", "flydsl", "_flydsl", "mori"}
    torch.cuda.get_device_properties = lambda *a, **k: types.SimpleNamespace(  # type: ignore[assignment]
        gcnArchName="gfx950", name="AMD Instinct MI355X", multi_processor_count=256, total_memory=288 << 30,
        major=9, minor=5)
    import vllm.models.minimax_m3 as pkg
    import vllm.models.minimax_m3.amd.model as amd

    pkg.MiniMaxM3SparseForConditionalGeneration = amd.MiniMaxM3SparseForConditionalGeneration  # type: ignore[misc]
    pkg.MiniMaxM3SparseForCausalLM = amd.MiniMaxM3SparseForCausalLM  # type: ignore[misc]


def run_tp(tp: int, rocm: bool = False) -> list[dict[str, Any]]:
    vo = _prepare()
    if rocm:
        _rocm_class()
    entry = json.load(open(os.path.join(vo.MODELS, STEM + ".json")))
    config = vo._catalog_config(entry["repo_id"])
    rows = []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cuda_like = vo.cuda_like
        for kv_dtype, max_len, block in (CASES[:1] if rocm else CASES):
            def user_block(cfg: Any, block: int | None = block) -> None:
                cuda_like(cfg)  # CUDA's defaults, then --block-size as the user gives it (CacheConfig)
                if block:
                    cfg.cache_config.block_size = block
                    cfg.cache_config.user_specified_block_size = True

            vo.cuda_like = user_block
            cfg = vo._config(d, tp, kv_dtype, max_len)
            model, backends = vo.meta_engine(cfg, tp)
            lm = model.language_model
            specs = vo._specs(cfg)
            cos_sin = sum(b.numel() * b.element_size() for n, b in lm.named_buffers() if n.endswith("cos_sin_cache"))
            # identical rotary modules are shared (get_rope caches them): count each buffer once
            seen: dict[int, int] = {}
            for n, b in lm.named_buffers():
                if n.endswith("cos_sin_cache"):
                    seen[b.data_ptr() if b.device.type != "meta" else id(b)] = b.numel() * b.element_size()
            layers: dict[str, int] = {}
            for name, spec in specs.items():
                row = vo._layer_row(spec)
                row["dtype"] = str(spec.dtype).replace("torch.", "")
                role = "index_cache" if name.endswith(".index_cache") else "attn"
                key = json.dumps({"role": role, **row}, sort_keys=True)
                layers[key] = layers.get(key, 0) + 1
            rows.append({
                "model": entry["repo_id"], "model_class": type(model).__module__, "tp": tp,
                "kv_cache_dtype": kv_dtype, "max_model_len": max_len,
                "block_size_arg": block,
                "max_num_batched_tokens": cfg.scheduler_config.max_num_batched_tokens,
                "attention_backends": backends, "cache_block_size": cfg.cache_config.block_size,
                "text_params_rank0": sum(p.numel() for p in lm.parameters()),
                "text_weight_bytes_rank0": sum(p.numel() * p.element_size() for p in lm.parameters()),
                "vision_params_rank0": sum(p.numel() for p in model.vision_tower.parameters()),
                "vision_weight_bytes_rank0": sum(p.numel() * p.element_size() for p in model.vision_tower.parameters()),
                "weight_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters()),
                "cos_sin_cache_bytes": sum(seen.values()), "cos_sin_cache_bytes_all_layers": cos_sin,
                "sparse_layers": sorted(int(re.search(r"layers\.(\d+)\.", n).group(1)) for n in specs
                                        if n.endswith(".index_cache")),
                "layer_specs": [dict(json.loads(k), layers=v) for k, v in sorted(layers.items())],
                "plans": [vo._plan(cfg, specs, int(g * vo.GIB)) for g in MEMORIES]})
            del model
    return rows


class _Allocated(Exception):
    pass


def score_cases() -> list[dict[str, Any]]:
    """The Triton indexer's prefill score tensor as vLLM's own minimax_m3_index_score asks torch.empty for it
    (common/ops/index_topk.py), called on meta inputs shaped as MiniMaxM3IndexerTritonImpl.forward passes them; the
    call stops at that allocation (no kernel runs)."""
    import torch
    from vllm.models.minimax_m3.common.ops import index_topk as it

    rows = []
    real_empty = torch.empty
    for heads, tokens, max_seq_len in ((4, 8192, 65536), (2, 8192, 1048576), (1, 2048, 131072), (1, 8192, 1000)):
        asked: list[Any] = []

        def empty(*shape: Any, **kw: Any) -> Any:
            asked.append((tuple(shape[0]) if len(shape) == 1 else shape, kw.get("dtype")))
            raise _Allocated

        it.torch.empty = empty  # type: ignore[assignment]
        try:
            it.minimax_m3_index_score(
                real_empty((tokens, heads, 128), device="meta"), real_empty((4, 128, 128), device="meta"),
                real_empty((1, 4), dtype=torch.int32, device="meta"), real_empty((2,), dtype=torch.int32, device="meta"),
                real_empty((1,), dtype=torch.int32, device="meta"), real_empty((1,), dtype=torch.int32, device="meta"),
                tokens, max_seq_len, heads)
        except _Allocated:
            pass
        finally:
            it.torch.empty = real_empty  # type: ignore[assignment]
        shape, dtype = asked[0]
        rows.append({"index_heads": heads, "tokens": tokens, "max_seq_len": max_seq_len, "shape": list(shape),
                     "dtype": str(dtype).replace("torch.", ""),
                     "bytes": int(torch.Size(shape).numel()) * real_empty((), dtype=dtype).element_size()})
    return rows


MEGA_CASES = [{"moe_backend": "deep_gemm_mega_moe"}, {"moe_backend": "deep_gemm_mega_moe", "enable_expert_parallel": True}]


def mega_moe_refusals(tp: int = 8) -> list[dict[str, Any]]:
    """--moe-backend deep_gemm_mega_moe on the catalog's BF16 checkpoint: vLLM's refusal while the model is built
    (vllm/models/minimax_m3/nvidia/model.py _use_mega_moe), in its words."""
    vo = _prepare()
    entry = json.load(open(os.path.join(vo.MODELS, STEM + ".json")))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(vo._catalog_config(entry["repo_id"]), f)
        for args in MEGA_CASES:
            vo.EXTRA_ARGS.clear()
            vo.EXTRA_ARGS.update(args)
            try:
                vo.meta_engine(vo._config(d, tp, "auto", 65536), tp)
                said = None
            except Exception as e:  # what vLLM refuses, as its message
                said = f"{type(e).__name__}: {e}"
            rows.append({"tp": tp, "engine_args": args, "refusal": said})
    vo.EXTRA_ARGS.clear()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tp", type=int)
    ap.add_argument("--scores", action="store_true")
    ap.add_argument("--rocm", action="store_true")
    a = ap.parse_args()
    if a.scores:
        _prepare()
        json.dump({"scores": score_cases(), "mega": mega_moe_refusals()}, open(a.out, "w"))
        return
    if a.tp:
        json.dump(run_tp(a.tp, a.rocm), open(a.out, "w"))
        return
    import vllm

    cases: list[dict[str, Any]] = []
    rocm_cases: list[dict[str, Any]] = []
    for tp, rocm in [(tp, False) for tp in TPS] + [(tp, True) for tp in TPS]:
        with tempfile.NamedTemporaryFile(suffix=".json") as t:
            subprocess.run([sys.executable, __file__, "--tp", str(tp), "--out", t.name] + (["--rocm"] if rocm else []),
                           check=True, env=dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR"))
            (rocm_cases if rocm else cases).extend(json.load(open(t.name)))
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        subprocess.run([sys.executable, __file__, "--scores", "--out", t.name], check=True,
                       env=dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR"))
        extra = json.load(open(t.name))
    doc = {"release": vllm.__version__.split("+")[0],
           "produced_by": "tools/vllm_minimax_m3_oracle.py (vLLM's own model class on the meta device, its "
                          "get_kv_cache_spec and KV planning, on a CPU machine)",
           "memories_gib": MEMORIES, "cases": cases, "rocm_class_cases": rocm_cases, "score_cases": extra["scores"],
           "mega_moe_refusals": extra["mega"]}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
