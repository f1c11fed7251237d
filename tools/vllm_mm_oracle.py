"""vLLM's own multimodal start-up choices, run on a CPU machine: the oracle for --limit-mm-per-prompt at 0,
--enable-mm-embeds, --language-model-only, --video-pruning-rate and --enable-tower-connector-lora in
vramcalc/vllm/engine.py and vramcalc/vllm/features.py (tests/data/vllm_mm_oracle_v0.33.0.json).

    PYTHONPATH=DIR VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_mm_oracle.py \
        --out tests/data/vllm_mm_oracle_v0.33.0.json            # the model builds (weights, buffers)
    PYTHONPATH=DIR VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_mm_oracle.py --fp8 \
        --out tests/data/vllm_mm_oracle_v0.33.0.json            # what an fp8 encoder attention build raises
    PYTHONPATH=DIR VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_mm_oracle.py --lora \
        --tp 1 --out tests/data/vllm_mm_oracle_v0.33.0.json     # LoRA slots, one TP degree per process

DIR holds torchvision (`pip install --no-deps --target DIR torchvision==0.28.0`): vLLM's Qwen-VL modules import
its transforms; its C ops are declared by tools/vllm_oracle.py _torchvision_stub.

Builds: for each catalog model and setting, EngineArgs(...).create_engine_config, then the model class on the meta
device (initialize_model under set_current_vllm_config, a TP group of fake ranks: tools/vllm_oracle.py). Written:
ModelConfig.supports_multimodal_inputs (vllm/config/model.py _supports_multimodal_inputs: whether the runner
profiles an encoder and keeps an encoder budget), the bytes of the parameters and buffers rank 0 holds, the
part of them under the tower modules (SupportsMultiModal._mark_tower_model's names; a tower skipped for its limits
is a StageMissingLayer holding nothing), and the rotary cos_sin_cache bytes.

--lora: vllm/lora/model_manager.py LoRAModelManager on the meta model with enable_lora and
enable_tower_connector_lora on or off; lora_bytes_rank0 sums the tensors of every wrapped module (as
tools/vllm_lora_oracle.py), tower_lora_bytes_rank0 those of the modules under the model's get_mm_mapping tower and
connector prefixes. LoRAModelManager._maybe_init_mm builds a MultiModalBudget, whose processor needs the model's
tokenizer, which this offline machine has not: it is replaced by a stand-in answering one image and one video
item of 16384 tokens. The budget sizes only the tower and connector punica wrappers (their token index tensors),
which are not slot tensors and are not summed; the slots are vLLM's own create_lora_weights.
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
import vllm_lora_oracle as lo  # noqa: E402

BUILD_MODELS = ["Qwen__Qwen3-VL-2B-Instruct", "Qwen__Qwen3.5-0.8B", "google__gemma-3-4b-it"]
BUILD_SETTINGS: list[dict[str, Any]] = [
    {},
    {"limit_mm_per_prompt": {"image": 0, "video": 0}},
    {"limit_mm_per_prompt": {"image": 0, "video": 0}, "enable_mm_embeds": True},
    {"limit_mm_per_prompt": {"image": 0}},
    {"limit_mm_per_prompt": {"image": 0}, "enable_mm_embeds": True},
    {"limit_mm_per_prompt": {"video": 0}},
    {"language_model_only": True},
    {"enable_mm_embeds": True},
    {"video_pruning_rate": 0.5},
    {"video_pruning_rate": 0.0},
    {"video_pruning_rate": 0.5, "language_model_only": True},
]
FP8_MODELS = ["Qwen__Qwen3-VL-2B-Instruct"]
FP8_SETTINGS: list[dict[str, Any]] = [{}, {"limit_mm_per_prompt": {"image": 0, "video": 0}}, {"language_model_only": True}]
LORA_MODELS = ["Qwen__Qwen3-VL-2B-Instruct", "Qwen__Qwen3-VL-8B-Instruct", "Qwen__Qwen3.5-0.8B",
               "Qwen__Qwen3-VL-30B-A3B-Instruct"]
LORA_SETTINGS = [(1, 16, False), (4, 64, False), (2, 8, True)]  # (max_loras, max_lora_rank, fully_sharded_loras)
LORA_EXTRA: list[dict[str, Any]] = [{}, {"mm_encoder_tp_mode": "data"}]  # the second at TP > 1 only


class _Budget:
    """The MultiModalBudget stand-in of --lora (the module docstring says why and what it sizes)."""

    def __init__(self, vllm_config: Any, registry: Any, **kwargs: Any) -> None:
        self.mm_max_items_per_prompt = {"image": 1, "video": 1}
        self.mm_max_toks_per_item = {"image": 16384, "video": 16384}

    def get_encoder_budget(self) -> int:
        return 16384


def _build(stem: str, tp: int, args: dict[str, Any]) -> tuple[Any, Any]:
    import torch
    from vllm.engine.arg_utils import EngineArgs
    from vllm.model_executor.model_loader.utils import initialize_model

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(entry["config"], f)
        torch.cpu._is_avx512_bf16_supported = lambda: False
        ea = EngineArgs(model=d, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        max_model_len=4096, max_num_batched_tokens=8192, max_num_seqs=256,
                        distributed_executor_backend="uni" if tp == 1 else "mp", **args)
        cfg = ea.create_engine_config()
        _init_group(tp, cfg)
        with meta_models(cfg):
            model = initialize_model(vllm_config=cfg)
        return cfg, model


def _bytes(named: Any) -> int:
    return sum(t.numel() * t.element_size() for _, t in named)


def build_case(stem: str, tp: int, args: dict[str, Any]) -> dict[str, Any]:
    repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
    cfg, model = _build(stem, tp, args)
    towers = list(getattr(model, "_tower_model_names", []) or [])

    def under(name: str) -> bool:
        return any(name == t or name.startswith(t + ".") for t in towers)

    return {"model": repo, "architecture": type(model).__name__, "tp": tp, "engine_args": args,
            "supports_multimodal_inputs": bool(cfg.model_config.supports_multimodal_inputs),
            "tower_modules": towers,
            "param_bytes_rank0": _bytes(model.named_parameters()),
            "buffer_bytes_rank0": _bytes(model.named_buffers()),
            "tower_param_bytes_rank0": _bytes((n, p) for n, p in model.named_parameters() if under(n)),
            "cos_sin_cache_bytes": _bytes((n, b) for n, b in model.named_buffers() if n.endswith("cos_sin_cache"))}


def lora_case(stem: str, tp: int, max_loras: int, rank: int, fs: bool, tower: bool,
              extra: dict[str, Any]) -> dict[str, Any]:
    import torch
    from vllm.lora.model_manager import LoRAModelManager

    repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
    cfg, model = _build(stem, tp, {"enable_lora": True, "max_loras": max_loras, "max_lora_rank": rank,
                                   "fully_sharded_loras": fs, "enable_tower_connector_lora": tower, **extra})
    with meta_models(cfg):
        manager = LoRAModelManager(model, 256, 8192, cfg.model_config.get_vocab_size(), cfg.lora_config,
                                   torch.device("meta"), cfg)
    mapping = model.get_mm_mapping()
    prefixes = [p.rstrip(".") for p in list(mapping.tower_model) + list(mapping.connector)]
    in_tower = {n for n in manager.modules if any(n == p or n.startswith(p + ".") for p in prefixes)}
    return {"model": repo, "architecture": type(model).__name__, "tp": tp, "max_loras": max_loras,
            "max_lora_rank": rank, "fully_sharded_loras": fs, "enable_tower_connector_lora": tower,
            "engine_args": extra, "dtype": str(cfg.model_config.dtype).replace("torch.", ""),
            "supports_tower_connector_lora": bool(getattr(type(model), "supports_tower_connector_lora", False)),
            "lora_bytes_rank0": sum(lo._tensor_bytes(m) for m in manager.modules.values()),
            "tower_lora_bytes_rank0": sum(lo._tensor_bytes(manager.modules[n]) for n in in_tower),
            "wrapped_modules": len(manager.modules), "tower_wrapped_modules": len(in_tower),
            "tower_wrappers": sorted({type(manager.modules[n]).__name__ for n in in_tower})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lora", action="store_true", help="the LoRA slot cases (else the model builds)")
    ap.add_argument("--fp8", action="store_true", help="the --mm-encoder-attn-dtype fp8 builds (what vLLM raises)")
    ap.add_argument("--tp", nargs="*", type=int, default=[1])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    _torchvision_stub()
    lo._stub_missing()
    lo._cpu_moe_wrappers()
    import vllm
    import vllm.lora.model_manager as manager_module

    manager_module.MultiModalBudget = _Budget  # type: ignore[misc,assignment]

    doc: dict[str, Any] = {"builds": [], "lora": [], "failed": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu (tools/vllm_mm_oracle.py): "
        "EngineArgs(...).create_engine_config, the model class built on the meta device under "
        "set_current_vllm_config (TP group of fake ranks), ModelConfig.supports_multimodal_inputs, the parameter "
        "and buffer bytes of rank 0 and of the tower modules (_mark_tower_model); --lora: "
        "vllm/lora/model_manager.py LoRAModelManager on it, the tensors of its wrapped modules summed, with a "
        "MultiModalBudget stand-in (one image and one video item of 16384 tokens) that sizes only the tower and "
        "connector punica wrappers, which are not summed; encoder_fp8 (--fp8): the same build with "
        "mm_encoder_attn_dtype 'fp8', the exception it raised"))

    def write() -> None:
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")

    if a.fp8:
        doc["encoder_fp8"] = []
        for stem in a.models or FP8_MODELS:
            for args in FP8_SETTINGS:
                case = {"model": json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"],
                        "engine_args": {"mm_encoder_attn_dtype": "fp8", **args}}
                try:
                    build_case(stem, 1, case["engine_args"])
                    case.update(built=True, error=None)
                except Exception as e:  # noqa: BLE001 - the refusal is the answer
                    case.update(built=False, error=f"{type(e).__name__}: {e}")
                case["backend"] = "TORCH_SDPA (the CPU platform's encoder backend)"
                doc["encoder_fp8"].append(case)
                print(case, flush=True)
                write()
        return
    if not a.lora:
        for stem in a.models or BUILD_MODELS:
            for tp in a.tp:
                for args in BUILD_SETTINGS:
                    try:
                        c = build_case(stem, tp, args)
                    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                        doc["failed"].append({"model": stem, "tp": tp, "engine_args": args,
                                              "error": f"{type(e).__name__}: {str(e)[:300]}"})
                        print(stem, tp, args, "FAILED", type(e).__name__, str(e)[:300], flush=True)
                        continue
                    doc["builds"] = [b for b in doc["builds"] if (b["model"], b["tp"], b["engine_args"]) !=
                                     (c["model"], c["tp"], c["engine_args"])] + [c]
                    print(c["model"], tp, args, c["supports_multimodal_inputs"], c["param_bytes_rank0"],
                          c["tower_param_bytes_rank0"], c["cos_sin_cache_bytes"], flush=True)
                    write()
        return
    for stem in a.models or LORA_MODELS:
        for tp in a.tp:
            for extra in LORA_EXTRA:
                if extra and tp == 1:
                    continue
                for ml, r, fs in LORA_SETTINGS:
                    for tower in (False, True):
                        if extra and not tower:
                            continue
                        try:
                            c = lora_case(stem, tp, ml, r, fs, tower, extra)
                        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                            doc["failed"].append({"model": stem, "tp": tp, "max_loras": ml, "max_lora_rank": r,
                                                  "fully_sharded_loras": fs, "enable_tower_connector_lora": tower,
                                                  "engine_args": extra,
                                                  "error": f"{type(e).__name__}: {str(e)[:300]}"})
                            print(stem, tp, ml, r, fs, tower, "FAILED", type(e).__name__, str(e)[:300], flush=True)
                            continue
                        key = ("model", "tp", "max_loras", "max_lora_rank", "fully_sharded_loras",
                               "enable_tower_connector_lora", "engine_args")
                        doc["lora"] = [x for x in doc["lora"] if any(x[k] != c[k] for k in key)] + [c]
                        print(c["model"], tp, ml, r, fs, tower, extra, c["lora_bytes_rank0"],
                              c["tower_lora_bytes_rank0"], flush=True)
                        write()


if __name__ == "__main__":
    main()
