"""One library call per question, the same answer the CLI prints with --json (README: Python API).

    check(model, system, engine=None | "vllm" | "llamacpp", **options) -> CheckResult | VLLMResult | LlamaResult
    plan(model, system, **options) -> PlanResult

model: a name (catalog id or alias, a local config.json, folder or .gguf, a Hub repo id; see open_model), a
ModelSource or a ModelSpec. system: a string as --gpu takes it ("rtx4090", "2x4090", "2x8xH100", "24GiB";
"cpu" for llama.cpp), a GPU or a System. Options are keyword arguments; an unknown one is an InputError that
lists those the call takes, an invalid value one that names what the option accepts."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Literal, get_args

from .check import CheckResult
from .check import check as _check
from .errors import InputError, unknown_options
from .gpus import GPU
from .llamacpp.engine import LlamaOptions, LlamaResult
from .messages import Message
from .plan import EngineChoice, Goal, PlanResult
from .quant import quant_name
from .sources import ModelSource, open_model
from .spec import ModelSpec
from .systems import System, parse_system
from .vllm.engine import VLLMOptions, VLLMResult
from .engine_checks import SPEED_OPTIONS

if TYPE_CHECKING:
    from .engine_checks import LlamaReport, VLLMReport

Model = ModelSpec | ModelSource | str
SystemLike = System | GPU | str
EngineName = Literal["vllm", "llamacpp"]

# context= and quant= for every engine: the plain check's context and conversion target, vLLM's
# max_model_len and quantization, llama.cpp's n_ctx and file type (gguf:Q4_K_M)
PLAIN_OPTIONS = ("context", "sequences", "quant", "revision")
ENGINE_OPTIONS = ("context", "quant", "host_ram_bytes", "revision")
VLLM_OPTIONS = ENGINE_OPTIONS + SPEED_OPTIONS + tuple(VLLMOptions.model_fields)
LLAMACPP_OPTIONS = ENGINE_OPTIONS + SPEED_OPTIONS + tuple(f for f in LlamaOptions.model_fields if f != "rpc_nodes")
PLAN_OPTIONS = ("context", "concurrency", "goal", "engine", "engine_version", "prompt_tokens", "output_tokens",
                "host_ram_bytes", "top", "prefer_quant", "revision", "pins")
# llama.cpp's options where the CLI's defaults differ from LlamaOptions': -ngl auto (the largest that fits), -ctk f16
LLAMACPP_DEFAULTS: dict[str, Any] = {"n_gpu_layers": None, "type_k": "f16", "type_v": "f16"}


def _refuse_unknown(call: str, options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(unknown_options(call, unknown, list(allowed)))


def model_source(model: Model, revision: str | None = None) -> ModelSource:
    """A name opened with open_model (at `revision` for a Hub repo id), a ModelSpec wrapped, a ModelSource as it is."""
    if isinstance(model, str):
        return open_model(model, revision=revision)
    if revision is not None:
        raise InputError("revision= applies to a model given by name")
    if isinstance(model, ModelSpec):
        return ModelSource(spec=model)
    if isinstance(model, ModelSource):
        return model
    raise InputError(f"model: expected a name, a ModelSource or a ModelSpec, got {type(model).__name__}")


def as_system(system: SystemLike) -> System:
    """A system string parsed as --gpu reads it; a GPU as a system of one."""
    if isinstance(system, str):
        return parse_system(system)
    if isinstance(system, GPU):
        return System(nodes=1, gpus=[system], notes=[system.note] if system.note else [])
    if isinstance(system, System):
        return system
    raise InputError(f"system: expected a string such as '2x4090', a GPU or a System, got {type(system).__name__}")


def _is_cpu(system: SystemLike) -> bool:
    return isinstance(system, str) and system.strip().lower() == "cpu"


def _merge(options: dict[str, Any], alias: str, field: str) -> Any:
    """`alias` (context, quant) and the engine's own `field` for it: either, or both when they agree."""
    a, f = options.pop(alias, None), options.pop(field, None)
    if a is not None and f is not None and a != f:
        raise InputError(f"{alias}={a!r} and {field}={f!r} disagree: give one of them")
    return f if f is not None else a


def check(model: Model, system: SystemLike, engine: EngineName | Literal["none"] | None = None,
          **options: Any) -> CheckResult | VLLMResult | LlamaResult:
    """The check `vramcalc check MODEL --gpu SYSTEM [--engine ENGINE]` makes, as its --json result.

    engine None: weights plus KV cache and state at `context` tokens for `sequences` sequences on one GPU
    (options: context, sequences, quant, revision). "vllm": vLLM's start-up on every GPU of the system
    (VLLMOptions' fields; tp and pp default to GPUs per node and nodes). "llamacpp": llama-server's buffers on
    the system's GPUs or the CPU (system "cpu"; LlamaOptions' fields, -ngl auto by default). Both engines also
    take context, quant, host_ram_bytes (to check the host's share and offload) and revision."""
    if engine in (None, "none"):
        _refuse_unknown("vramcalc.check()", options, PLAIN_OPTIONS)
        return _plain(model, system, **options)
    if engine == "vllm":
        _refuse_unknown("vramcalc.check(engine='vllm')", options, VLLM_OPTIONS)
        return _vllm(model, system, dict(options))
    if engine == "llamacpp":
        _refuse_unknown("vramcalc.check(engine='llamacpp')", options, LLAMACPP_OPTIONS)
        return _llamacpp(model, system, dict(options))
    raise InputError(f"engine={engine!r}: expected None, 'vllm' or 'llamacpp'")


def _plain(model: Model, system: SystemLike, context: int | None = None, sequences: int = 1,
           quant: str | None = None, revision: str | None = None) -> CheckResult:
    if _is_cpu(system):
        raise InputError("system 'cpu' is for engine='llamacpp': the plain check is against one GPU")
    sys_ = as_system(system)
    source = model_source(model, revision)
    if sys_.nodes * sys_.gpus_per_node > 1:
        raise InputError(f"{system!r} has several GPUs: pass engine='vllm' (with tp=/pp=) or engine='llamacpp' to "
                         "place the model on them")
    return _check(source.spec, sys_.gpus[0], context=context, sequences=sequences,
                  file_weight_bytes=source.weight_bytes, quant=quant_name(quant, "none"))


def _vllm(model: Model, system: SystemLike, options: dict[str, Any]) -> VLLMResult:
    return vllm_report(model, system, options).result


def config_source(model: Model, path: str, revision: str | None = None) -> tuple[ModelSource, Message]:
    """--hf-config-path PATH: vLLM builds the model from PATH's config (v0.33.0 vllm/config/model.py
    ModelConfig.__post_init__: get_config(hf_config_path or model), at --revision too) and loads the checkpoint's
    tensors into it, so the model is sized from that config, read as vramcalc reads a model (a local folder or
    config.json, a catalog id, a Hub repo). Its weights are that config's parameters: safetensors headers beside it
    belong to another checkpoint and are not used. The spec keeps the served model's name."""
    from .messages import warning

    spec = model_source(path, revision).spec
    name = model if isinstance(model, str) else model_source(model).spec.id
    said = warning("command.hf_config_path", f"--hf-config-path {path}: {name} is sized from that config "
                   f"({spec.architecture or spec.model_type}), as vLLM builds it (vllm/config/model.py ModelConfig); "
                   "its weights are that config's parameters", source="vllm/config/model.py")
    return ModelSource(spec=spec.model_copy(update={"id": name})), said


def vllm_report(model: Model, system: SystemLike, options: dict[str, Any]) -> "VLLMReport":
    """check(engine="vllm")'s report: the result with the GPU that sized it (options already checked as names)."""
    from .engine_checks import vllm_on_system, with_speed

    if _is_cpu(system):
        raise InputError("system 'cpu' is for engine='llamacpp': vLLM runs on GPUs")
    host_ram, revision = options.pop("host_ram_bytes", None), options.pop("revision", None)
    load = {k: options.pop(k) for k in SPEED_OPTIONS if k in options}
    options["max_model_len"] = _merge(options, "context", "max_model_len")
    options["quantization"] = quant_name(_merge(options, "quant", "quantization"), "vllm")
    VLLMOptions(**{k: v for k, v in options.items() if v is not None})  # every value checked before any work
    sys_ = as_system(system)
    name = system.strip() if isinstance(system, str) else None
    path = options.get("hf_config_path")
    said = None
    if path is not None and path != model:
        source, said = config_source(model, path, revision)
    else:
        source = model_source(model, revision)
    report = vllm_on_system(source, sys_, options, host_ram, name)
    if said is not None:
        report = dataclasses.replace(report, result=report.result.model_copy(
            update={"warnings": [said] + report.result.warnings}))
    from .vllm.quant_config import is_online

    quant = options.get("quantization")
    if is_online(quant, options.get("quantization_config") is not None, options.get("engine_version")) or \
            quant == "humming":
        quant = None  # the speed estimate reads an online quantization's weights as the checkpoint stores them
    return with_speed(report, source.spec, sys_, quant,  # type: ignore[no-any-return]
                      enforce_eager=bool(options.get("enforce_eager")), kv_cache_dtype=options.get("kv_cache_dtype"),
                      prefix_caching=options.get("enable_prefix_caching"), **load)


def _llamacpp(model: Model, system: SystemLike, options: dict[str, Any]) -> LlamaResult:
    return llamacpp_report(model, system, options).result


def llamacpp_report(model: Model, system: SystemLike, options: dict[str, Any]) -> "LlamaReport":
    """check(engine="llamacpp")'s report: the result with the spec and where the weights came from."""
    from .engine_checks import gpu_layers, llama_ftype, llamacpp_on_system, with_speed
    from .sources.limits import redact

    host_ram, revision = options.pop("host_ram_bytes", None), options.pop("revision", None)
    load = {k: options.pop(k) for k in SPEED_OPTIONS if k in options}
    options["n_ctx"] = _merge(options, "context", "n_ctx")
    quant = quant_name(options.pop("quant", None), "llamacpp")  # Q4_K_M as gguf:Q4_K_M, as the CLI reads it
    if quant is not None and options.get("ftype") is not None:
        if (llama_ftype(quant) or "").upper() != str(options["ftype"]).upper():
            raise InputError(f"quant={quant!r} and ftype={options['ftype']!r} disagree: give one of them")
    for k in ("n_gpu_layers", "n_gpu_layers_draft"):  # N, "auto" or "all", as -ngl / -ngld take them
        if k in options:
            options[k] = gpu_layers(options[k])
    for k in ("lora", "lora_scaled", "device_draft", "kv_overrides"):  # one string is a list of one
        if isinstance(options.get(k), str):
            options[k] = (options[k],)
    options = {**LLAMACPP_DEFAULTS, **options}
    ftype = llama_ftype(quant) if quant else options.get("ftype")
    LlamaOptions(**{**options, "ftype": ftype})  # every value checked before any work
    sys_ = None if _is_cpu(system) else as_system(system)
    source = model_source(model, revision)
    if isinstance(model, str) and model.endswith(".gguf"):
        ref = redact(model)
    elif not isinstance(model, str) and source.spec.source.startswith("gguf:") and source.gguf_tensors is not None:
        ref = redact(source.spec.source[len("gguf:"):])
    else:
        ref = f"<{source.spec.id} {ftype}>.gguf"
    report = llamacpp_on_system(source, sys_, options, host_ram, ref, quant)
    return with_speed(report, report.spec, sys_, quant, llamacpp_build=options.get("build"),  # type: ignore[no-any-return]
                      **load)


def plan(model: Model, system: SystemLike, **options: Any) -> PlanResult:
    """The plan `vramcalc plan MODEL --gpu SYSTEM` makes: engines, quants and layouts that fit, ranked for
    goal= (latency, throughput, context). Options: context, concurrency, goal, engine (vllm, llamacpp, any),
    engine_version, prompt_tokens, output_tokens, host_ram_bytes, top, prefer_quant, revision, pins (a
    vramcalc.plan.Pins, or its fields as a dict: quant, tp, pp, replicas, kv_cache_dtype, enforce_eager, backend,
    parallel)."""
    from .plan import gguf_file_of, plan as _plan

    _refuse_unknown("vramcalc.plan()", options, PLAN_OPTIONS)
    for name, allowed in (("goal", get_args(Goal)), ("engine", get_args(EngineChoice))):
        if name in options and options[name] not in allowed:
            raise InputError(f"{name}={options[name]!r}: expected one of {', '.join(map(repr, allowed))}")
    revision = options.pop("revision", None)
    if isinstance(options.get("pins"), dict):
        from pydantic import ValidationError

        from .plan import Pins

        try:
            pins = dict(options["pins"])
            pins["quant"] = quant_name(pins.get("quant"), options.get("engine", "any"))  # Q4_K_M as the CLI reads it
            options["pins"] = Pins(**pins)
        except ValidationError as e:
            raise InputError(f"pins={options['pins']!r}: {e.errors()[0]['msg']}") from None
    source = model_source(model, revision)
    ref = model if isinstance(model, str) else source.spec.id
    return _plan(source.spec, as_system(system), gguf_file=gguf_file_of(source, ref), **options)
