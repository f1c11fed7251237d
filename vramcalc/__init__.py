"""vramcalc: will this model run on this GPU, with which engine, quant and context.

    >>> import vramcalc
    >>> spec = vramcalc.load_model("llama-3.1-8b")
    >>> result = vramcalc.check(spec, "rtx4090", context=8192)
    >>> result.fits, round(result.required_bytes / 2**30, 1)
    (True, 16.0)
    >>> vramcalc.check("llama-3.1-8b", "2x4090", engine="vllm", context=8192).fits
    True
"""

from __future__ import annotations

from .check import CheckResult
from .errors import ConfigError, InputError, UnknownGPUError, UnknownModelError, VramcalcError
from .gpus import GPU, find_gpu
from .params import ParamCounts, count_params
from .sources import ModelSource, load_model, open_model
from .spec import ModelSpec
from .plan import PlanResult  # noqa: E402  (the module; `vramcalc.plan` below is the function)
from .llamacpp.engine import LlamaOptions, LlamaResult
from .trace import Explanation, TraceTerm
from .vllm.engine import VLLMOptions, VLLMResult
from .systems import System, parse_system
from .api import check, plan  # noqa: E402  (after the module vramcalc.plan: `vramcalc.plan` is the function)
from .pasted_command import CommandResult, check_command

__version__ = "0.1.0"


__all__ = [
    "CheckResult", "ConfigError", "GPU", "ModelSource", "ModelSpec", "ParamCounts", "UnknownGPUError", "UnknownModelError",
    "PlanResult", "VramcalcError", "check", "plan", "count_params", "find_gpu", "load_model", "open_model",
    "LlamaResult", "VLLMResult", "Explanation", "TraceTerm", "InputError", "LlamaOptions", "VLLMOptions", "System",
    "parse_system", "check_command", "CommandResult",
]
