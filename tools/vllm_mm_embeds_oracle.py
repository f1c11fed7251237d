"""vLLM 0.34.0's own encoder cache for precomputed embeddings (--enable-mm-embeds with every modality at 0, and an
EC consumer of --ec-transfer-config), run on a CPU machine: the oracle for vramcalc/vllm/mm_embeds.py, written to
tests/data/vllm_mm_embeds_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_mm_embeds_oracle.py \
        --out tests/data/vllm_mm_embeds_oracle_v0.34.0.json

For each catalog multimodal model and TP degree: EngineArgs(..., limit_mm_per_prompt at 0 for every modality the
class marks its towers with, enable_mm_embeds=True).create_engine_config on a directory holding the catalog's
config.json (no tokenizer: skip_tokenizer_init). Written: ModelConfig.supports_multimodal_inputs (the runner keeps
an EncoderCache, vllm/v1/worker/gpu/model_runner.py), the model dtype, ModelConfig.get_inputs_embeds_size() (the
hidden size the frontend checks each embedding tensor against, vllm/multimodal/processing/context.py
_get_expected_hidden_size), SchedulerConfig.encoder_cache_size and max_num_encoder_input_tokens, and
vllm/v1/core/encoder_cache_manager.py compute_mm_encoder_budget called with a largest item below and above
max_num_batched_tokens (the processor's own largest item needs the model's tokenizer and processor files, which this
offline machine has not). image_embeds_refusal: the assertion the model class's source raises on image embeddings
(gemma3_mm.py, gemma4_mm.py), casts_embeds: whether its image-embeds branch casts them to the tower's dtype
(`.type(self.visual.dtype)`). packed_width: for the classes with DeepStack, the vision tower's out_hidden_size as
vLLM builds it on the meta device with the default limits (what an EC producer sends, vllm/distributed/ec_transfer/
ec_connector/encoder_output_width.py). ec: the resolved MultiModalConfig of an ec_consumer and an ec_producer
(VllmConfig._resolve_mm_embedding_inputs, _resolve_mm_encoder_only).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from vllm_oracle import MODELS, setup  # noqa: E402

TPS = [1, 2]
MNBT = 8192
MAX_LEN = 32768
# the modalities each class marks its towers with (vramcalc/data/vllm.json zero_limits_skip_tower_since)
TOWER = {"Gemma3ForConditionalGeneration": ["image"], "Llama4ForConditionalGeneration": ["image"],
         "KimiK25ForConditionalGeneration": ["vision_chunk"]}
EC = {"ec_connector": "ECExampleConnector", "ec_connector_extra_config": {"shared_storage_path": "/tmp/ec"}}


def stems() -> list[str]:
    out = []
    for f in sorted(os.listdir(MODELS)):
        entry = json.load(open(os.path.join(MODELS, f)))
        if "vision_config" in entry.get("config", {}):
            out.append(f.removesuffix(".json"))
    return out


def _config(stem: str, tp: int, **args: Any) -> Any:
    from vllm.engine.arg_utils import EngineArgs

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(entry["config"], f)
        ea = EngineArgs(model=d, skip_tokenizer_init=True, load_format="dummy", tensor_parallel_size=tp,
                        max_model_len=MAX_LEN, max_num_batched_tokens=MNBT, max_num_seqs=256,
                        distributed_executor_backend="uni" if tp == 1 else "mp", **args)
        return ea.create_engine_config()


def _class_source(arch: str) -> tuple[str | None, bool]:
    from vllm.model_executor.models.registry import ModelRegistry

    cls = ModelRegistry._try_load_model_cls(arch)
    src = "".join(inspect.getsource(c) for c in cls.__mro__ if c.__module__.startswith("vllm.model_executor.models")
                  and c.__module__.split(".")[-1] not in ("interfaces", "interfaces_base", "utils"))
    m = re.search(r'assert image_embeds is None, "([^"]+)"', src)
    return (m.group(1) if m else None), ".type(self.visual.dtype)" in src


def case(stem: str, tp: int) -> dict[str, Any]:
    from vllm.v1.core.encoder_cache_manager import compute_mm_encoder_budget

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    arch = entry["config"]["architectures"][0]
    zero = dict.fromkeys(TOWER.get(arch, ["image", "video"]), 0)
    cfg = _config(stem, tp, limit_mm_per_prompt=zero, enable_mm_embeds=True)
    mc, sc = cfg.model_config, cfg.scheduler_config
    refusal, casts = _class_source(arch)
    return {"model": entry["repo_id"], "architecture": arch, "tp": tp,
            "engine_args": {"limit_mm_per_prompt": zero, "enable_mm_embeds": True,
                            "max_num_batched_tokens": MNBT, "max_model_len": MAX_LEN},
            "supports_multimodal_inputs": bool(mc.supports_multimodal_inputs),
            "dtype": str(mc.dtype).replace("torch.", ""),
            "inputs_embeds_size": mc.get_inputs_embeds_size(),
            "encoder_cache_size": sc.encoder_cache_size,
            "max_num_encoder_input_tokens": sc.max_num_encoder_input_tokens,
            "budget_item_below": list(compute_mm_encoder_budget(sc, {"image": MNBT // 2})),
            "budget_item_above": list(compute_mm_encoder_budget(sc, {"image": MNBT + 4096})),
            "image_embeds_refusal": refusal, "casts_embeds": casts}


def packed_width(stem: str) -> int | None:
    import vllm_mm_oracle as mm

    _, model = mm._build(stem, 1, {})
    return int(getattr(model.visual, "out_hidden_size")) if hasattr(model, "visual") else None


def ec_case(stem: str, role: str, zero: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"ec_transfer_config": {**EC, "ec_role": role}}
    if zero:
        args["limit_mm_per_prompt"] = {"image": 0, "video": 0}
    cfg = _config(stem, 1, **args)
    mm = cfg.model_config.multimodal_config
    return {"model": json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"], "ec_role": role,
            "engine_args": args, "enable_mm_embeds": mm.enable_mm_embeds,
            "allow_missing_mm_embeddings": mm.allow_missing_mm_embeddings, "mm_encoder_only": mm.mm_encoder_only,
            "is_mm_encoder_only": bool(cfg.is_mm_encoder_only),
            "supports_multimodal_inputs": bool(cfg.model_config.supports_multimodal_inputs),
            "enable_prefix_caching": cfg.cache_config.enable_prefix_caching}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--packed", nargs="*", default=["Qwen__Qwen3-VL-2B-Instruct", "Qwen__Qwen3-VL-8B-Instruct",
                                                    "Qwen__Qwen3-VL-30B-A3B-Instruct", "Qwen__Qwen3.5-0.8B"])
    a = ap.parse_args()
    setup()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "produced_by": (
        f"vLLM {vllm.__version__} wheel run on CPU with VLLM_TARGET_DEVICE=cpu (tools/vllm_mm_embeds_oracle.py): "
        "EngineArgs(...).create_engine_config on each catalog config.json with --limit-mm-per-prompt 0 for the "
        "tower modalities and --enable-mm-embeds; ModelConfig.get_inputs_embeds_size, the model dtype, "
        "SchedulerConfig.encoder_cache_size, compute_mm_encoder_budget with a largest item below and above "
        "max_num_batched_tokens, the model class's image-embeds branch; packed_width: the vision tower's "
        "out_hidden_size built on the meta device; ec: the resolved MultiModalConfig of each EC role"),
        "cases": [], "packed_width": {}, "ec": [], "failed": []}
    for stem in a.models or stems():
        for tp in TPS:
            try:
                c = case(stem, tp)
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                doc["failed"].append({"model": stem, "tp": tp, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                print(stem, tp, "FAILED", type(e).__name__, str(e)[:300], flush=True)
                continue
            doc["cases"].append(c)
            print(c, flush=True)
    for stem in a.packed:
        try:
            doc["packed_width"][json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]] = packed_width(stem)
        except Exception as e:  # noqa: BLE001
            doc["failed"].append({"model": stem, "packed": True, "error": f"{type(e).__name__}: {str(e)[:300]}"})
        print(stem, doc["packed_width"], flush=True)
    for role in ("ec_consumer", "ec_producer", "ec_both"):
        for zero in (False, True):
            try:
                doc["ec"].append(ec_case("Qwen__Qwen3-VL-2B-Instruct", role, zero))
            except Exception as e:  # noqa: BLE001
                doc["failed"].append({"ec_role": role, "zero": zero, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            print(role, zero, doc["ec"][-1:], flush=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
