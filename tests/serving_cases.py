"""The measured serving runs of tests/data/serving_runs.json as serving-model inputs (shared by
tests/test_serving.py, tools/calibrate_serving.py and benchmarks/speed_accuracy.py).

Source of the runs: the measured sample of aiconfigurator-core 0.12.0 (PyPI, Apache-2.0,
aiconfigurator_core/systems/silicon_sample.csv), H100 SXM and B200 SXM rows only.

HELD-OUT SPLIT, fixed before anything was fitted (commit "serving: held-out split"): a run belongs to
the held-out split when sha256 of its deployment key, the run id without its `_<isl>x<osl>_c<N>` part
(so one engine configuration with every length and concurrency it was measured at), is 0 mod 5. Whole
deployments are held out, so a held-out row never shares a configuration with a calibration row.
tools/calibrate_serving.py reads only `calibrate` rows; benchmarks/speed_accuracy.py reports both.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vramcalc.serving import Deployment

SERVING = Path(__file__).parent / "data" / "serving_runs.json"

# The engines vramcalc models; SGLang and TensorRT-LLM rows are not modelled and not read.
ENGINES = {"vllm": "vllm"}

# model_path in the runs -> the vramcalc catalog model whose dimensions it has, and why
MODELS: dict[str, tuple[str, str]] = {
    "meta-llama/Llama-3.1-70B": ("llama-3.1-70b-instruct", "the Instruct release has the base model's dimensions"),
    "Qwen/Qwen3-32B": ("Qwen/Qwen3-32B", "itself"),
    "openai/gpt-oss-120b": ("openai/gpt-oss-120b", "itself (its own MXFP4 checkpoint)"),
    "moonshotai/Kimi-K2.5": ("kimi-k2-instruct", "K2.5's language model keeps Kimi-K2's DeepSeek-V3 dimensions "
                             "(61 layers, 384 experts, top-8)"),
}
# rows left out, and why (a model without a config in the catalog cannot be weighed)
EXCLUDED_MODELS = {"MiniMaxAI/MiniMax-M2.5": "no config of it in the catalog"}

_LENGTHS = re.compile(r"_\d+x\d+_c\d+")


def deployment(run: dict) -> str:
    return _LENGTHS.sub("", run["id"])


def role(run: dict) -> str:
    """`holdout` or `calibrate`, from the run id alone (see the module docstring)."""
    return "holdout" if int(hashlib.sha256(deployment(run).encode()).hexdigest(), 16) % 5 == 0 else "calibrate"


def quant_of(run: dict) -> str | None:
    """The vramcalc --quant the run's weight format is (None: the checkpoint as published)."""
    if run["model_path"] == "openai/gpt-oss-120b":
        return None  # MXFP4 experts as published; the sample's `fp4` label is the format family
    mode = run.get("moe_quant_mode") or run.get("gemm_quant_mode")
    return {None: "bf16", "fp8": "fp8", "fp8_block": "fp8-block", "nvfp4": "nvfp4", "int4_wo": "w4a16"}[mode]


def deployment_of(run: dict) -> "Deployment":
    from vramcalc.gpus import find_gpu
    from vramcalc.serving import Deployment

    return Deployment(engine=run["engine"], gpu=find_gpu(run["gpu"]), quant=run["quant"], tp=run["tp_size"],
                      link="nvlink")


@lru_cache(maxsize=None)
def spec_reads(model: str, quant: str | None) -> tuple:
    from vramcalc.sources import load_model
    from vramcalc.speed import weight_reads

    spec = load_model(model)
    return spec, weight_reads(spec, quant)


@lru_cache(maxsize=1)
def load_runs() -> tuple[dict, ...]:
    """Every run vramcalc can model, with `role`, `model` (catalog name) and `quant` added."""
    out = []
    for r in json.loads(SERVING.read_text())["runs"]:
        if r["backend"] not in ENGINES or r["model_path"] not in MODELS:
            continue
        if r["system"] not in ("h100_sxm", "b200_sxm"):  # other systems are kept for later checks: never read
            continue
        if (r.get("attention_dp_size") or 1) > 1 or (r.get("pp_size") or 1) > 1:
            continue  # attention data parallel is not modelled; no vLLM run here has PP
        out.append({**r, "engine": ENGINES[r["backend"]], "role": role(r), "model": MODELS[r["model_path"]][0],
                    "quant": quant_of(r), "gpu": {"h100_sxm": "h100-sxm", "b200_sxm": "b200"}[r["system"]]})
    return tuple(out)
