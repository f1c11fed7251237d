"""vLLM's own LoRA adapter slots, built on the meta device on a CPU machine: the oracle for
vramcalc/vllm/features.py lora_bytes.

Run with the throwaway venv of tools/vllm_oracle.py (vllm wheel --no-deps, torch 2.13.0+cpu):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_lora_oracle.py \
        --out tests/data/vllm_lora_oracle.json
    for tp in 1 2; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_lora_oracle.py --moe \
        --tp $tp --out tests/data/vllm_lora_oracle.json; done  # one TP degree per process for the MoE models
    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_lora_oracle.py --moe --ep --tp 2 \
        --out tests/data/vllm_lora_oracle.json  # expert parallelism (allgather_reducescatter)
    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_lora_oracle.py --graphs \
        --out tests/data/vllm_lora_oracle.json

For each catalog config and setting it builds vLLM's VllmConfig with enable_lora (EngineArgs.create_engine_config),
the model class on the meta device inside a TP group of fake ranks (tools/vllm_oracle.py), then vLLM's
LoRAModelManager on it (vllm/lora/model_manager.py: the modules it wraps and each wrapper's create_lora_weights),
and sums the bytes of every tensor the wrappers hold (views of other tensors counted once). Only figures are
written: the adapter bytes of rank 0, the wrapped module count and the model class's embedding_modules.

MoE models: vllm/lora/layers/fused_moe.py FusedMoEWithLoRA.__init__ checks and binds the GPU modular MoE kernel,
which the CPU build has not ("Old-style modular kernel not supported"), and set_mapping hands that kernel its LoRA
context. The oracle replaces the two (_cpu_moe_wrappers): __init__ with the attributes create_lora_weights reads
(the runner's moe_config, its MoE TP rank and size, the device, two w13 slices for a gated MoE, no aux stream),
set_mapping with the base class's. The slot tensors are still made by vLLM's own create_lora_weights
(FusedMoEWithLoRA's and FusedMoE3DWithLoRA's), and LoRAModelManager still picks the wrapper. --moe cases also run
with enable_moe_shared_loras (--enable-moe-shared-loras) and enable_mixed_moe_lora_format
(--enable-mixed-moe-lora-format); --variant-unquantized drops a checkpoint's quantization_config first (GPT-OSS's
MXFP4 experts have no CPU kernel: the adapter slots are in the LoRA dtype either way, see the case's note).

--graphs writes the CUDA-graph keys with LoRA (the "graphs" list): vllm/v1/cudagraph_dispatcher.py
CudagraphDispatcher.initialize_cudagraph_keys run for FULL_AND_PIECEWISE on a stand-in VllmConfig holding a real
CompilationConfig (capture sizes 1, 2, 4, 8 .. 512 as VllmConfig sets them for max_num_seqs 256), a real LoRAConfig
(max_loras, specialize_active_lora) or none, and the scheduler's max_num_seqs; the PIECEWISE and FULL key counts.

--support writes, for every architecture of the catalog's configs, whether vLLM's model registry says the class
supports LoRA (vllm/model_executor/models/registry.py _ModelInfo.supports_lora, the SupportsLoRA interface that
vllm/config/lora.py LoRAConfig.verify_with_model_config requires), as "lora_support"; a class that cannot be
inspected here (multimodal ones need torchvision) is left out.

The recurrent hybrids were run as `--models nvidia__Nemotron-H-8B-Base-8K ai21labs__Jamba-v0.1 --tp 1` (and
`--tp 2`, another process). Catalog configs without `architectures` are not oracle cases: vLLM then builds another
class (tiiuae/Falcon-H1-7B-Instruct's partial config became FalconH1ForEmbedding, a pooling model without lm_head).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import MODELS, _init_group, _torchvision_stub, meta_models  # noqa: E402

# packages vLLM's serving side imports on the way to vllm/lora/model_manager.py that the CPU venv lacks
# (event loop, structured output): nothing of them runs here
STUBBED = ("uvloop", "xgrammar", "llguidance", "outlines_core")


def _stub_missing() -> None:
    """An import finder that answers STUBBED packages (and their submodules) with empty modules whose every
    public attribute is a do-nothing class."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import types

    class _Any:
        def __init__(self, *a: Any, **k: Any) -> None: ...

        def __call__(self, *a: Any, **k: Any) -> Any:
            return _Any()

        def __getattr__(self, name: str) -> Any:
            return _Any()

    missing = {n for n in STUBBED if importlib.util.find_spec(n) is None}

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
            if fullname.split(".")[0] in missing:
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec: Any) -> Any:
            mod = types.ModuleType(spec.name)
            mod.__file__ = f"<{spec.name} stub>"
            mod.__path__ = []

            def attr(key: str) -> Any:
                if key.startswith("__"):
                    raise AttributeError(key)
                return _Any

            mod.__getattr__ = attr  # type: ignore[method-assign]
            return mod

        def exec_module(self, module: Any) -> None:
            return None

    sys.meta_path.append(_Finder())


SETTINGS = [  # (max_loras, max_lora_rank, fully_sharded_loras)
    (1, 16, False), (4, 64, False), (2, 8, True),
]
MOE_FLAGS = [  # (enable_moe_shared_loras, enable_mixed_moe_lora_format) for MoE models, besides (False, False)
    (True, False), (False, True),
]
MOE_MODELS = ["Qwen__Qwen3-30B-A3B", "deepseek-ai__DeepSeek-V2-Lite", "Qwen__Qwen3-Next-80B-A3B-Thinking",
              "openai__gpt-oss-20b"]
UNQUANTIZED = {"openai__gpt-oss-20b"}  # MXFP4 experts: no CPU MoE backend builds them (see the module docstring)


def _cpu_moe_wrappers() -> None:
    """FusedMoEWithLoRA without its GPU kernel binding (the module docstring says why and what stays vLLM's)."""
    import torch.nn as nn
    from vllm.lora.layers import fused_moe
    from vllm.lora.layers.base import BaseLayerWithLoRA

    def init(self: Any, base_layer: Any) -> None:
        nn.Module.__init__(self)
        self.base_layer = base_layer
        self.moe_config = base_layer.moe_config
        self._shared_experts = base_layer._shared_experts
        par = self.moe_config.moe_parallel_config
        self.tp_size, self.tp_rank = par.tp_size, par.tp_rank
        self.device = fused_moe._get_lora_device(base_layer)
        self._enable_aux_cuda_stream, self._lora_stream, self._events = False, None, None
        self._w13_slices = 2 if self.moe_config.is_act_and_mul else 1
        self.enable_moe_shared_loras = False
        self.n_slices = self.local_num_experts * (self._w13_slices + 1)

    fused_moe.FusedMoEWithLoRA.__init__ = init  # type: ignore[method-assign]
    fused_moe.FusedMoEWithLoRA.set_mapping = BaseLayerWithLoRA.set_mapping  # type: ignore[method-assign]
DEFAULT_MODELS = ["meta-llama__Llama-3.2-3B-Instruct", "meta-llama__Llama-3.1-8B-Instruct", "Qwen__Qwen3-8B",
                  "Qwen__Qwen2.5-7B-Instruct", "mistralai__Mistral-7B-Instruct-v0.3", "Qwen__Qwen3-30B-A3B",
                  "microsoft__Phi-3-mini-4k-instruct", "google__gemma-2-9b", "deepseek-ai__DeepSeek-V2-Lite"]


def _tensor_bytes(module: Any) -> int:
    import torch

    seen: set[int] = set()
    total = 0

    def add(t: Any) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor):
            if t._base is not None or id(t) in seen:  # a view of a tensor counted on its own
                return
            seen.add(id(t))
            total += t.numel() * t.element_size()
        elif isinstance(t, (tuple, list)):
            for x in t:
                add(x)

    for k, v in vars(module).items():
        if k in ("base_layer", "_parameters", "_buffers", "_modules"):
            continue
        add(v)
    return total


def run_one(stem: str, tp: int, max_loras: int, rank: int, fully_sharded: bool, moe_shared: bool = False,
            mixed_moe: bool = False, ep: bool = False) -> dict[str, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.model_manager import LoRAModelManager
    from vllm.model_executor.model_loader.utils import initialize_model

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    config = dict(entry["config"])
    if stem in UNQUANTIZED:
        config.pop("quantization_config", None)
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=d, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        max_model_len=4096, max_num_batched_tokens=8192, max_num_seqs=256, enable_lora=True,
                        max_loras=max_loras, max_lora_rank=rank, fully_sharded_loras=fully_sharded,
                        enable_moe_shared_loras=moe_shared, enable_mixed_moe_lora_format=mixed_moe,
                        **({"enable_expert_parallel": True, "all2all_backend": "allgather_reducescatter"} if ep else {}),
                        distributed_executor_backend="uni" if tp == 1 else "mp")
        cfg = ea.create_engine_config()
        _init_group(tp, cfg)
        dtype = cfg.model_config.dtype
        with meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
            manager = LoRAModelManager(model, 256, 8192, cfg.model_config.get_vocab_size(), cfg.lora_config,
                                       torch.device("meta"), cfg)
        lora = sum(_tensor_bytes(m) for m in manager.modules.values())
        if os.environ.get("VLLM_LORA_ORACLE_MODULES"):  # a per-module breakdown on stderr, for looking into a case
            for name, m in manager.modules.items():
                if ".layers.0." in name or "layers" not in name:
                    print(name, type(m).__name__, _tensor_bytes(m), file=sys.stderr)
        out = {"model": entry["repo_id"], "architecture": type(model).__name__, "tp": tp, "max_loras": max_loras,
               "max_lora_rank": rank, "fully_sharded_loras": fully_sharded, "dtype": str(dtype).replace("torch.", ""),
               "lora_bytes_rank0": lora, "wrapped_modules": len(manager.modules),
               "embedding_modules": sorted(getattr(type(model), "embedding_modules", {}) or {})}
        if ep:
            out["enable_expert_parallel"] = True
        if moe_shared or mixed_moe or manager._is_moe:
            out.update(enable_moe_shared_loras=moe_shared, enable_mixed_moe_lora_format=mixed_moe,
                       moe_wrappers=sorted({type(m).__name__ for m in manager.modules.values()
                                            if "FusedMoE" in type(m).__name__}),
                       is_3d_moe_weight=bool(getattr(type(model), "is_3d_moe_weight", False)))
        if stem in UNQUANTIZED:
            out["note"] = ("built without the checkpoint's quantization_config (no CPU kernel for its experts); the "
                           "slots are in the LoRA dtype either way, but a quantized expert layer's padded width "
                           "(vLLM's backend choice) may differ")
        return out


GRAPH_LORAS = [1, 2, 3, 4, 7, 8, 16, 32]


def graph_keys(max_loras: int | None, specialize: bool) -> dict[str, Any]:
    from types import SimpleNamespace

    from vllm.config import CompilationMode, CUDAGraphMode
    from vllm.config.compilation import CompilationConfig
    from vllm.config.lora import LoRAConfig
    from vllm.v1.cudagraph_dispatcher import CudagraphDispatcher

    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, 513, 16))
    cc = CompilationConfig(cudagraph_capture_sizes=sizes, max_cudagraph_capture_size=512,
                           cudagraph_mode=CUDAGraphMode.FULL_AND_PIECEWISE, mode=CompilationMode.VLLM_COMPILE,
                           splitting_ops=list(CompilationConfig._attention_ops))  # as set_splitting_ops_for_v1 does
    lc = None if max_loras is None else LoRAConfig(max_loras=max_loras, specialize_active_lora=specialize)
    cfg = SimpleNamespace(compilation_config=cc, lora_config=lc, num_speculative_tokens=0,
                          scheduler_config=SimpleNamespace(max_num_seqs=256))
    d = CudagraphDispatcher(cfg)  # type: ignore[arg-type]
    d.initialize_cudagraph_keys(CUDAGraphMode.FULL_AND_PIECEWISE, 1)
    return {"max_loras": max_loras, "specialize_active_lora": specialize, "capture_sizes": len(sizes),
            "piecewise_keys": len(d.cudagraph_keys[CUDAGraphMode.PIECEWISE]),
            "full_keys": len(d.cudagraph_keys[CUDAGraphMode.FULL])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--tp", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--moe", action="store_true", help="the MoE models, with and without the MoE LoRA flags")
    ap.add_argument("--graphs", action="store_true", help="only the CUDA-graph keys with LoRA (the graphs list)")
    ap.add_argument("--ep", action="store_true", help="with --moe: expert parallelism on (--enable-expert-parallel)")
    ap.add_argument("--support", action="store_true", help="only which catalog architectures support LoRA")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    _torchvision_stub()
    _stub_missing()
    _cpu_moe_wrappers()
    import vllm

    doc: dict[str, Any] = {"cases": [], "failed": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu: EngineArgs(enable_lora=True, ...)."
        "create_engine_config, the model class built on the meta device (initialize_model under "
        "set_current_vllm_config, TP group of fake ranks), vllm/lora/model_manager.py LoRAModelManager on it; "
        "lora_bytes_rank0 sums the tensors its wrapped modules hold (tools/vllm_lora_oracle.py); MoE layers: "
        "FusedMoEWithLoRA's GPU kernel binding (__init__ checks, set_mapping) replaced, its create_lora_weights "
        "vLLM's own (_cpu_moe_wrappers)"))

    if a.support:
        import glob

        from vllm.model_executor.models.registry import ModelRegistry

        archs = sorted({arch for path in glob.glob(os.path.join(MODELS, "*.json"))
                        for arch in (json.load(open(path)).get("config", {}).get("architectures") or [])})
        support: dict[str, bool] = {}
        for arch in archs:
            try:
                info = ModelRegistry._try_inspect_model_cls(arch)
            except Exception:  # noqa: BLE001 - left out, as the docstring says
                info = None
            if info is not None:
                support[arch] = bool(info.supports_lora)
        doc["lora_support"] = support
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        return
    if a.graphs:
        doc["graphs"] = [graph_keys(None, False)] + [graph_keys(n, sp) for n in GRAPH_LORAS for sp in (False, True)]
        doc["graphs_by"] = ("vllm/v1/cudagraph_dispatcher.py CudagraphDispatcher.initialize_cudagraph_keys "
                            "(FULL_AND_PIECEWISE, decode query length 1, max_num_seqs 256) on a real "
                            "CompilationConfig and LoRAConfig (max_loras None: LoRA off)")
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        return

    def key(c: dict[str, Any]) -> tuple[Any, ...]:
        return (c["model"], c["tp"], c["max_loras"], c["max_lora_rank"], c["fully_sharded_loras"],
                c.get("enable_moe_shared_loras", False), c.get("enable_mixed_moe_lora_format", False),
                c.get("enable_expert_parallel", False))

    done = {key(c) for c in doc["cases"]}
    for stem in (MOE_MODELS if a.moe else a.models):
        repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
        for tp in a.tp:
            for ml, r, fs in SETTINGS:
                if a.ep and fs:  # fused_moe.py _verify_ep_fs: EP with fully sharded LoRA is refused
                    continue
                for shared, mixed in [(False, False)] + (MOE_FLAGS if a.moe else []):
                    want = {"model": repo, "tp": tp, "max_loras": ml, "max_lora_rank": r, "fully_sharded_loras": fs,
                            "enable_moe_shared_loras": shared, "enable_mixed_moe_lora_format": mixed,
                            **({"enable_expert_parallel": True} if a.ep else {})}
                    if key(want) in done:
                        continue
                    doc["failed"] = [f for f in doc["failed"] if key(f) != key(want)]
                    try:
                        doc["cases"].append(run_one(stem, tp, ml, r, fs, shared, mixed, a.ep))
                        print(repo, tp, ml, r, fs, shared, mixed, doc["cases"][-1]["lora_bytes_rank0"], flush=True)
                    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                        doc["failed"].append({**want, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                        print(repo, tp, "FAILED", type(e).__name__, str(e)[:300], flush=True)
                with open(a.out, "w") as f:
                    json.dump(doc, f, indent=1)
                    f.write("\n")


if __name__ == "__main__":
    main()
