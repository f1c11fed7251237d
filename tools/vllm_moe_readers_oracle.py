"""OLMoE, ERNIE-4.5-MoE and Hunyuan-A13B as vLLM v0.34.0 builds them, on a CPU machine, at TP 1 and TP 2:
tests/data/vllm_moe_readers_oracle_v0.34.0.json (what vramcalc's olmoe / ernie4_5_moe / hunyuan_v1_moe readers must
match).

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_moe_readers_oracle.py \
        --out tests/data/vllm_moe_readers_oracle_v0.34.0.json --also /work/venvs/vllm-0.33.0/bin/python

(--also: the same rows from another release's venv, each row naming its release: vLLM 0.33.0 still builds OLMoE with
its own models/olmoe.py, Hunyuan-A13B already with the Transformers backend.)

The configs (and where each is published) are those of tests/data/vllm_generic_fallback_oracle_v0.34.0.json, and
VARIANTS of them (below) that take the readers' other branches. For each
TP degree (one process per degree: the fake process group's world size is fixed once made) tools/vllm_oracle.py builds
the engine config (EngineArgs.create_engine_config, load_format dummy, max_model_len 4096) and the model on the meta
device (meta_engine), then records rank 0's parameters (count, bytes, and the count per parameter name with the layer
index written *), its buffers (name and bytes) and every layer's KV cache spec (tools/vllm_oracle.py _specs, as
GPUModelRunner.get_kv_cache_spec takes them; bytes_per_token = page_size_bytes / block_size). vLLM 0.34.0 builds
OlmoeForCausalLM and HunYuanMoEV1ForCausalLM with its Transformers backend (registry.py
_TRANSFORMERS_SUPPORTED_MODELS: TransformersMoEForCausalLM over transformers' own modules) and
Ernie4_5_MoeForCausalLM with its own class (models/ernie45_moe.py). At TP 1 the row also holds transformers' own
parameter count (AutoModelForCausalLM.from_config on the meta device, transformers as installed beside vLLM, in a
process that does not import vLLM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

HERE = os.path.dirname(__file__)
FALLBACK = os.path.join(HERE, "..", "tests", "data", "vllm_generic_fallback_oracle_v0.34.0.json")
NAMES = ("OLMoE-1B-7B-0924", "ERNIE-4.5-21B-A3B-PT", "Hunyuan-A13B-Instruct")
TPS = (1, 2)
# Variants of the survey configs that take the readers' other branches (a few layers, to stay small): OLMoE with one KV
# head (split below a head at TP 2) and biases; ERNIE with MoE every second layer to the last (-1), biases and no
# shared expert; Hunyuan with per-layer top-k, biases and the Hub fields transformers 5.24 does not read
VARIANTS = {
    "OLMoE-variant": ("OLMoE-1B-7B-0924", {"num_hidden_layers": 4, "num_key_value_heads": 1, "attention_bias": True,
                                           "num_experts": 16}),
    "ERNIE-variant": ("ERNIE-4.5-21B-A3B-PT", {"num_hidden_layers": 6, "moe_layer_interval": 2, "moe_layer_end_index": -1,
                                               "use_bias": True, "moe_num_shared_experts": 0, "moe_num_experts": 16}),
    "Hunyuan-variant": ("Hunyuan-A13B-Instruct", {"num_hidden_layers": 4, "moe_topk": [1, 2, 4, 8], "attention_bias": True,
                                                  "num_experts": 16, "use_cla": True, "cla_share_factor": 2,
                                                  "moe_intermediate_size": [1536] * 4, "num_shared_expert": [2] * 4}),
}


def _configs() -> dict[str, dict[str, Any]]:
    """name -> the config: the survey's own, and the variants (their overrides on it)."""
    cases = {c["name"]: c for c in json.load(open(FALLBACK))["cases"]}
    out = {n: cases[n]["config"] for n in NAMES}
    out.update({v: {**cases[of]["config"], **over} for v, (of, over) in VARIANTS.items()})
    return out


def _transformers_params(config: dict[str, Any]) -> int:
    import torch
    import vllm_oracle as vo

    vo._torchvision_stub()  # transformers' modeling modules import torchvision, whose C ops do not load here
    from transformers import AutoConfig, AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = AutoConfig.from_pretrained(d)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in model.parameters())


def run_tp(tp: int) -> list[dict[str, Any]]:
    import vllm_oracle as vo

    vo.setup()
    import vllm
    from vllm.v1.kv_cache_interface import AttentionSpec

    rows = []
    for name, config in _configs().items():
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                cfg = vo._config(d, tp, "auto", 4096)
            model, backends = vo.meta_engine(cfg, tp)
            specs = vo._specs(cfg)
            by_name: dict[str, int] = {}
            for n, p in model.named_parameters():
                key = re.sub(r"\.layers\.\d+\.", ".layers.*.", n)
                by_name[key] = by_name.get(key, 0) + p.numel()
            kv: dict[str, int] = {}
            for spec in specs.values():
                r = vo._layer_row(spec)
                if isinstance(spec, AttentionSpec):
                    r["bytes_per_token"] = spec.page_size_bytes / spec.block_size
                k = json.dumps(r, sort_keys=True)
                kv[k] = kv.get(k, 0) + 1
            row: dict[str, Any] = {
                "name": name, "model_type": config["model_type"], "tp": tp, "release": vllm.__version__.split("+")[0],
                "architecture": cfg.model_config.architectures[0], "model_class": type(model).__name__,
                "dtype": str(cfg.model_config.dtype).replace("torch.", ""), "attention_backends": backends,
                "params_rank0": sum(p.numel() for p in model.parameters()),
                "weights_bytes_rank0": sum(p.numel() * p.element_size() for p in model.parameters()),
                "params_by_name_rank0": dict(sorted(by_name.items())),
                "buffers_rank0": {n: b.numel() * b.element_size() for n, b in model.named_buffers()},
                "buffer_bytes_rank0": sum(b.numel() * b.element_size() for b in model.buffers()),
                "kv_layer_specs": [dict(json.loads(k), layers=v) for k, v in sorted(kv.items())],
                "kv_bytes_per_token_all_layers": sum(json.loads(k).get("bytes_per_token", 0) * v for k, v in kv.items()),
            }
            rows.append(row)
            del model
            print(name, tp, row["params_rank0"], row["kv_bytes_per_token_all_layers"], file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tp", type=int)
    ap.add_argument("--transformers", action="store_true")
    ap.add_argument("--also", nargs="*", default=[], help="other releases' Pythons (a vLLM venv's bin/python)")
    a = ap.parse_args()
    if a.transformers:  # a process without vLLM: its Transformers backend decorates transformers' model classes
        json.dump({n: _transformers_params(c) for n, c in _configs().items()}, open(a.out, "w"))
        return
    if a.tp:
        json.dump(run_tp(a.tp), open(a.out, "w"))
        return
    import vllm
    import transformers

    cases: list[dict[str, Any]] = []
    doc_release = vllm.__version__.split("+")[0]
    for python, tp in [(p, tp) for p in [sys.executable, *a.also] for tp in TPS]:
        with tempfile.NamedTemporaryFile(suffix=".json") as t:
            subprocess.run([python, __file__, "--tp", str(tp), "--out", t.name], check=True,
                           env=dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR"))
            cases.extend(json.load(open(t.name)))
    # --model-impl vllm: the registry's Transformers-backend mappings are entries of _VLLM_MODELS, built all the same
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        impl = {"model_impl": "vllm"}
        subprocess.run([sys.executable, __file__, "--tp", "1", "--out", t.name], check=True,
                       env=dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR",
                                VLLM_ORACLE_ENGINE_ARGS=json.dumps(impl)))
        model_impl_vllm = [dict(r, engine_args=impl) for r in json.load(open(t.name))]
    with tempfile.NamedTemporaryFile(suffix=".json") as t:
        subprocess.run([sys.executable, __file__, "--transformers", "--out", t.name], check=True)
        hf = json.load(open(t.name))
    for row in cases:
        if row["tp"] == 1 and row["release"] == doc_release:
            row["transformers_params"] = hf[row["name"]]
    fallback = {c["name"]: c for c in json.load(open(FALLBACK))["cases"]}
    doc = {"release": doc_release, "transformers": transformers.__version__,
           "produced_by": "tools/vllm_moe_readers_oracle.py: vLLM's own model class (EngineArgs(model=<the config>, "
                          "load_format=dummy, tensor_parallel_size=TP, max_model_len=4096).create_engine_config(), "
                          "built on the meta device by tools/vllm_oracle.py meta_engine, one process per TP degree) on "
                          "a CPU machine (VLLM_TARGET_DEVICE=cpu): rank 0's parameters, buffers and KV cache specs "
                          "(tools/vllm_oracle.py _specs, as GPUModelRunner.get_kv_cache_spec), each row naming its vLLM "
                          "release; model_impl_vllm_cases: the same at TP 1 with EngineArgs(model_impl='vllm'); "
                          "transformers_params: "
                          "AutoModelForCausalLM.from_config on the meta device",
           "configs": {n: {k: fallback[n][k] for k in ("model_type", "source", "config")} for n in NAMES},
           "variants": {v: {"of": of, "overrides": over, "config": _configs()[v]} for v, (of, over) in VARIANTS.items()},
           "cases": cases, "model_impl_vllm_cases": model_impl_vllm}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
