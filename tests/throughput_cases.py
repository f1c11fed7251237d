"""The measured decode runs of tests/data/throughput_cases.json as speed-model inputs (shared by
tests/test_speed.py, tools/calibrate_speed.py and benchmarks/speed_accuracy.py)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from vramcalc.sources import load_model
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec import ModelSpec
from vramcalc.speed import Hardware, kv_read_bytes, step_terms, weight_reads

CASES = Path(__file__).parent / "data" / "throughput_cases.json"


@lru_cache(maxsize=1)
def _file() -> dict:
    return json.loads(CASES.read_text())


def load_cases() -> list[dict]:
    return _file()["cases"]


@lru_cache(maxsize=None)
def _spec(name: str) -> ModelSpec:
    proxies = _file()["proxies"]
    if name in proxies:
        return spec_from_config(proxies[name]["config"], model_id=name, source="proxy", where=f"proxy {name}")
    return load_model(name)


def case_spec(case: dict) -> ModelSpec:
    return _spec(case["model"])


def case_hardware(case: dict) -> Hardware:
    n = case.get("devices", 1)
    tp = case.get("tp", 1)
    return Hardware(engine=case["engine"], backend=case["backend"], bandwidth_gbs=case["bandwidth_gbs"], tp=tp,
                    stages=n // tp if case.get("split") == "layer" else 1, link=case.get("link", "none"),
                    enforce_eager=bool(case.get("enforce_eager")), llamacpp_build=case.get("llamacpp_build"),
                    compute_capability=_compute_capability(case.get("gpu")))


def _compute_capability(gpu_id: str | None) -> str | None:
    from vramcalc.gpus import find_gpu

    return find_gpu(gpu_id).compute_capability if gpu_id else None


def predict_step_ms(case: dict) -> float:
    spec = case_spec(case)
    reads = weight_reads(spec, case["quant"])
    kv = kv_read_bytes(spec, case["context"], case.get("kv_dtype"), case["engine"])
    return sum(step_terms(reads, kv, case["batch"], case_hardware(case)).values())


def predict_prefill_tps(case: dict, mfu: float) -> float:
    """Prompt tokens/s of the speed model's compute bound on the case's GPU."""
    from vramcalc.gpus import find_gpu
    from vramcalc.speed import prefill_tokens_per_s

    tflops = find_gpu(case["gpu"]).tflops_16bit
    assert tflops, case["id"]
    return prefill_tokens_per_s(weight_reads(case_spec(case), case["quant"]), tflops, mfu)
