"""No result carries a negative memory or time term, over every check and plan path.

Allowed below zero: the "not given" sentinel available_bytes == -1 (host RAM not given), and the
headrooms free_bytes / vLLM's kv_cache_bytes (and the trace's `free` term), which are negative only
when the result does not fit.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from vramcalc.check import check
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.plan import plan
from vramcalc.sources.catalog import load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec import ModelSpec
from vramcalc.systems import parse_system
from vramcalc.vllm.engine import VLLMOptions, check_vllm

HEADROOMS = ("free_bytes", "kv_cache_bytes")


def negatives(obj: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """(path, value) of every number below zero in a dumped result, the allowed ones left out."""
    if isinstance(obj, dict):
        if obj.get("name") == "free" and "value" in obj:  # a trace's headroom term
            return
        for k, v in obj.items():
            yield from negatives(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from negatives(v, f"{path}[{i}]")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and obj < 0:
        leaf = path.rsplit(".", 1)[-1]
        if obj == -1 and leaf in ("available_bytes", "available"):
            return
        if leaf in HEADROOMS:
            return
        yield path, obj


def headrooms_fit(obj: Any, fits: bool, path: str = "") -> Iterator[str]:
    """Paths of negative headrooms in a result that claims to fit."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in HEADROOMS and isinstance(v, int) and v < 0 and fits:
                yield f"{path}.{k}"
            yield from headrooms_fit(v, fits, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from headrooms_fit(v, fits, f"{path}[{i}]")


def assert_no_negative(result: Any, what: str) -> None:
    dumped = result.model_dump()
    bad = list(negatives(dumped))
    assert not bad, f"{what}: negative terms {bad[:5]}"
    assert not list(headrooms_fit(dumped, bool(dumped.get("fits")))), f"{what}: fits with a negative headroom"


CATALOG = ["llama-3.1-8b", "qwen3-next-80b-a3b-thinking", "deepseek-v3", "gpt-oss-20b", "gemma-3-4b-it",
           "zamba2-7b", "mamba-codestral-7b-v0.1", "qwen3-32b"]

_TINY = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256, "max_position_embeddings": 512,
         "torch_dtype": "bfloat16"}
SYNTHETIC = {
    "tiny-llama": _TINY,
    "tiny-mixtral": {**_TINY, "model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2,
                     "sliding_window": 128},
    "tiny-one-layer-mha": {**_TINY, "num_hidden_layers": 1, "num_key_value_heads": 4, "vocab_size": 1},
    "tiny-gptq": {**_TINY, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": -1}},
}


def _spec(name: str) -> ModelSpec:
    if name in SYNTHETIC:
        return spec_from_config(SYNTHETIC[name], model_id=name, source=f"test:{name}")
    return load(name)


@pytest.mark.parametrize("name", CATALOG + list(SYNTHETIC))
def test_check_paths_carry_no_negative_term(name: str) -> None:
    spec = _spec(name)
    gpu = find_gpu("rtx4090")
    assert_no_negative(check(spec, gpu, context=8192), f"{name} check")
    assert_no_negative(check(spec, gpu, context=1, sequences=3), f"{name} check ctx 1")
    assert_no_negative(check_vllm(spec, gpu, VLLMOptions()), f"{name} check_vllm")
    assert_no_negative(check_vllm(spec, gpu, VLLMOptions(max_model_len=1024)), f"{name} check_vllm 1024")
    llama = {
        "cpu": (None, LlamaOptions(ftype="Q4_K_M", n_ctx=4096)),
        "1 gpu": (gpu, LlamaOptions(ftype="Q4_K_M", n_ctx=4096)),
        "layer split": ([gpu, gpu], LlamaOptions(ftype="Q4_K_M", n_ctx=4096)),
        "partial offload": (gpu, LlamaOptions(ftype="Q4_K_M", n_ctx=4096, n_gpu_layers=1)),
        "auto ngl": (gpu, LlamaOptions(ftype="Q8_0", n_ctx=32768, n_gpu_layers=None)),
    }
    for what, (gpus, opts) in llama.items():
        assert_no_negative(check_llamacpp(spec, gpus, opts), f"{name} check_llamacpp {what}")


@pytest.mark.parametrize("name", ["llama-3.1-8b", "qwen3-next-80b-a3b-thinking", "gpt-oss-20b", "tiny-mixtral"])
def test_plan_carries_no_negative_term(name: str) -> None:
    spec = _spec(name)
    for system in ("rtx4090", "2x4090"):
        r = plan(spec, parse_system(system))
        assert_no_negative(r, f"{name} plan {system}")
        for c in r.recommendations:
            assert c.speed.model_dump() and not list(negatives(c.speed.model_dump()))
