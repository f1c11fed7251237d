"""vLLM's own LoRA adapter slots, built on the meta device on a CPU machine: the oracle for
vramcalc/vllm/features.py lora_bytes.

Run with the throwaway venv of tools/vllm_oracle.py (vllm wheel --no-deps, torch 2.13.0+cpu):

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_lora_oracle.py \
        --out tests/data/vllm_lora_oracle.json

For each catalog config and setting it builds vLLM's VllmConfig with enable_lora (EngineArgs.create_engine_config),
the model class on the meta device inside a TP group of fake ranks (tools/vllm_oracle.py), then vLLM's
LoRAModelManager on it (vllm/lora/model_manager.py: the modules it wraps and each wrapper's create_lora_weights),
and sums the bytes of every tensor the wrappers hold (views of other tensors counted once). Only figures are
written: the adapter bytes of rank 0, the wrapped module count and the model class's embedding_modules.
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


def run_one(stem: str, tp: int, max_loras: int, rank: int, fully_sharded: bool) -> dict[str, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.model_manager import LoRAModelManager
    from vllm.model_executor.model_loader.utils import initialize_model

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(entry["config"], f)
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=d, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        max_model_len=4096, max_num_batched_tokens=8192, max_num_seqs=256, enable_lora=True,
                        max_loras=max_loras, max_lora_rank=rank, fully_sharded_loras=fully_sharded,
                        distributed_executor_backend="uni" if tp == 1 else "mp")
        cfg = ea.create_engine_config()
        _init_group(tp, cfg)
        dtype = cfg.model_config.dtype
        with meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
            manager = LoRAModelManager(model, 256, 8192, cfg.model_config.get_vocab_size(), cfg.lora_config,
                                       torch.device("meta"), cfg)
        lora = sum(_tensor_bytes(m) for m in manager.modules.values())
        return {"model": entry["repo_id"], "architecture": type(model).__name__, "tp": tp, "max_loras": max_loras,
                "max_lora_rank": rank, "fully_sharded_loras": fully_sharded, "dtype": str(dtype).replace("torch.", ""),
                "lora_bytes_rank0": lora, "wrapped_modules": len(manager.modules),
                "embedding_modules": sorted(getattr(type(model), "embedding_modules", {}) or {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--tp", nargs="*", type=int, default=[1, 2])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    _torchvision_stub()
    _stub_missing()
    import vllm

    doc: dict[str, Any] = {"cases": [], "failed": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu: EngineArgs(enable_lora=True, ...)."
        "create_engine_config, the model class built on the meta device (initialize_model under "
        "set_current_vllm_config, TP group of fake ranks), vllm/lora/model_manager.py LoRAModelManager on it; "
        "lora_bytes_rank0 sums the tensors its wrapped modules hold (tools/vllm_lora_oracle.py)"))
    done = {(c["model"], c["tp"], c["max_loras"], c["max_lora_rank"], c["fully_sharded_loras"]) for c in doc["cases"]}
    for stem in a.models:
        repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
        for tp in a.tp:
            for ml, r, fs in SETTINGS:
                if (repo, tp, ml, r, fs) in done:
                    continue
                try:
                    doc["cases"].append(run_one(stem, tp, ml, r, fs))
                    print(repo, tp, ml, r, fs, doc["cases"][-1]["lora_bytes_rank0"], flush=True)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    doc["failed"].append({"model": repo, "tp": tp, "max_loras": ml, "max_lora_rank": r,
                                          "fully_sharded_loras": fs, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                    print(repo, tp, "FAILED", type(e).__name__, str(e)[:300], flush=True)
                with open(a.out, "w") as f:
                    json.dump(doc, f, indent=1)
                    f.write("\n")


if __name__ == "__main__":
    main()
