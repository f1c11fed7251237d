"""vramcalc: will this model run on this GPU, with which engine, quant and context.

    >>> import vramcalc
    >>> spec = vramcalc.load_model("llama-3.1-8b")
    >>> result = vramcalc.check(spec, "rtx4090", context=8192)
    >>> result.fits, round(result.required_bytes / 2**30, 1)
    (True, 16.0)
"""

from __future__ import annotations

from typing import Any

from .check import CheckResult
from .check import check as _check
from .errors import ConfigError, UnknownGPUError, UnknownModelError, VramcalcError
from .gpus import GPU, find_gpu
from .params import ParamCounts, count_params
from .sources import ModelSource, load_model, open_model
from .spec import ModelSpec
from .plan import PlanResult  # noqa: E402  (the module; `vramcalc.plan` below is the function)
from .llamacpp.engine import LlamaResult
from .trace import Explanation, TraceTerm
from .vllm.engine import VLLMResult

__version__ = "0.1.0"


def plan(model: ModelSpec | ModelSource | str, gpu: str, **options: Any) -> PlanResult:
    """Recommended engines, quants and layouts for `model` on the system `gpu` (`2x4090`, `4x3090`,
    `2x8xH100`, ...), ranked for options["goal"] (latency, throughput, context); see vramcalc.plan.plan."""
    from .plan import plan as _plan
    from .systems import parse_system

    source = open_model(model) if isinstance(model, str) else model
    spec = source if isinstance(source, ModelSpec) else source.spec
    return _plan(spec, parse_system(gpu), **options)


def check(model: ModelSpec | ModelSource | str, gpu: GPU | str, context: int | None = None,
          sequences: int = 1) -> CheckResult:
    """Weights plus KV cache and state at `context` tokens for `sequences` sequences, on one GPU.
    A name is opened with open_model; files give exact weight bytes."""
    source = open_model(model) if isinstance(model, str) else model
    if isinstance(source, ModelSpec):
        source = ModelSource(spec=source)
    device = find_gpu(gpu) if isinstance(gpu, str) else gpu
    return _check(source.spec, device, context=context, sequences=sequences, file_weight_bytes=source.weight_bytes)


__all__ = [
    "CheckResult", "ConfigError", "GPU", "ModelSource", "ModelSpec", "ParamCounts", "UnknownGPUError", "UnknownModelError",
    "PlanResult", "VramcalcError", "check", "plan", "count_params", "find_gpu", "load_model", "open_model",
    "LlamaResult", "VLLMResult", "Explanation", "TraceTerm",
]
