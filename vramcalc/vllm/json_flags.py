"""vLLM 0.33.0's JSON-object serve flags --additional-config, --model-loader-extra-config, --model-class-overrides,
--weight-transfer-config, --engram-config, --diffusion-config, --ec-transfer-config and --ec-manager-config:
refused as vLLM refuses them (its parser's config classes, the loader's __init__, the factories the engine builds
at start-up), and their keys read as the code that reads them does. data/vllm_features.json json_flags names each
rule's source; tests/data/vllm_json_flags_oracle_v0.33.0.json is vLLM's own answer to the same values."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..data_files import load
from ..data_models import VllmModelClasses, VllmServeArgs
from ..errors import InputError
from ..messages import Message, warning
from .features import features

# the JSON flags this module reads, by their field in data/command_flags.json
FIELDS = ("additional_config", "model_loader_extra_config", "model_class_overrides", "weight_transfer_config",
          "engram_config", "diffusion_config", "ec_transfer_config", "ec_manager_config")
GDN_BACKENDS = ("flashinfer", "triton", "cutedsl", "aiter_flydsl", "sycl")  # VLLMOptions.gdn_prefill_backend


@dataclass
class Read:
    """What the JSON flags set (options), list as of no effect, and warn about."""
    options: dict[str, Any] = field(default_factory=dict)
    no_effect: list[str] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)


def _pydantic(flag: str, cls: str, loc: str, msg: str) -> InputError:
    """A config class's refusal as `vllm serve` prints it (argparse wraps the pydantic error; its [type=...] and
    link left out)."""
    return InputError(f"vllm serve: error: argument {flag}: 1 validation error for {cls} {loc} {msg}".replace("  ", " "))


def _object(flag: str, values: list[str], cls: str, fields: list[str] | None, built: bool = False) -> dict[str, Any]:
    """The flag's JSON objects (its dotted keys arrive as more of them), merged, refused as vLLM's parser refuses
    them: a config class's flag (a pydantic dataclass read from the JSON) says Invalid JSON, or that the value
    should be an object; a key the config class does not have is refused as pydantic does (@config forbids extra
    keys), by the parser or, with built, by EngineArgs.create_engine_config, which builds the class from a dict
    (DiffusionConfig, whose flag is a json.loads dict)."""
    out: dict[str, Any] = {}
    for v in values:
        try:
            obj = json.loads(v)
        except json.JSONDecodeError:
            if built:  # the parser's json.loads type (vllm/engine/arg_utils.py get_kwargs)
                raise InputError(f"vllm serve: error: argument {_argname(flag)}: Value {v} cannot be converted "
                                 "to <function loads>.") from None
            raise _pydantic(flag, cls, "", "Invalid JSON") from None
        if not isinstance(obj, dict):
            if built:
                raise InputError(f"TypeError: vllm.config.diffusion.{cls}() argument after ** must be a mapping, "
                                 f"not {type(obj).__name__}")
            raise _pydantic(flag, cls, "", "Input should be an object")
        out.update(obj)
    for k in out:
        if fields is not None and k not in fields:
            if built:
                raise InputError(f"ValidationError: 1 validation error for {cls} {k} Unexpected keyword argument")
            raise _pydantic(flag, cls, k, "Unexpected keyword argument")
    return out


def _dict(flag: str, values: list[str], refusal: str) -> dict[str, Any]:
    """A dict-valued ModelConfig / LoadConfig field's JSON (json.loads by the parser), refused as vLLM does."""
    out: dict[str, Any] = {}
    for v in values:
        try:
            obj = json.loads(v)
        except json.JSONDecodeError:
            raise InputError(f"vllm serve: error: argument {_argname(flag)}: Value {v} cannot be converted to "
                             "<function loads>.") from None
        if not isinstance(obj, dict):
            raise InputError(refusal)
        out.update(obj)
    return out


def _argname(flag: str) -> str:
    """The argument as argparse names it in an error: its option strings joined by / (data/vllm_serve_args.json)."""
    names = next((o.names for o in load("vllm_serve_args.json", VllmServeArgs).options if flag in o.names), [flag])
    return "/".join(names)


def _pyset(keys: list[str]) -> str:
    return "{" + ", ".join(repr(k) for k in sorted(keys)) + "}"


def _additional(flag: str, written: str, values: list[str], gdn_flag: bool, out: Read) -> None:
    ac = features().json_flags.additional_config
    obj: dict[str, Any] = {}
    for v in values:  # VllmConfig.additional_config: dict | SupportsHash; a string is neither
        try:
            x = json.loads(v)
        except json.JSONDecodeError:
            x = None
        if not isinstance(x, dict):
            raise InputError(ac.refusal)
        obj.update(x)
    read = False
    for key, over in ac.modelled.items():  # gdn_prefill_backend: the option of the same name
        if key not in obj or (over == "--gdn-prefill-backend" and gdn_flag):  # the flag writes over the key
            continue
        b = str(obj[key]).strip().lower()  # _resolve_gdn_prefill_backend
        if b in GDN_BACKENDS:
            out.options[key] = b
            read = True
        elif b != "auto":
            out.warnings.append(warning("command.not_modelled", f"{flag}: {key} {b!r} is none of "
                                        f"{', '.join(GDN_BACKENDS)} and vLLM falls back on a kernel of its choice; "
                                        "vramcalc does not model it yet: the figures ignore it"))
            return
    unsized = [k for k in obj if k in ac.unsized]
    if unsized:
        out.warnings.append(warning("command.not_modelled", f"{flag}: "
                                    + "; ".join(f"{k}: {ac.unsized[k]}" for k in unsized)
                                    + "; vramcalc does not read those models' configs or size those kernels: the "
                                    "figures ignore it"))
    elif not read:  # no in-tree code of the CUDA and ROCm platforms reads the other keys
        out.no_effect.append(written)


def _loader(flag: str, written: str, values: list[str], load_format: str, strategy: str | None, out: Read) -> None:
    lc = features().json_flags.loader_extra_config
    if load_format in lc.own_keys and any(v.strip() not in ("", "{}") for v in values):
        out.warnings.append(warning("command.not_modelled", f"{flag}: read by the {load_format} loader's own "
                                    "loading path, which vramcalc does not size; the figures ignore it"))
        return
    obj: dict[str, Any] = {}
    for v in values:  # LoadConfig.model_loader_extra_config: a JSON object, or the string as written
        try:
            x = json.loads(v)
        except json.JSONDecodeError:
            x = v
        if not isinstance(x, dict):
            raise InputError(f"ValueError: model_loader_extra_config must be a dict for load format {load_format}, "
                             "got str")  # DefaultModelLoader.__init__ (the other loaders fail on it unworded)
        obj.update(x)
    loader = next((n for n, x in lc.loaders.items() if load_format in x.formats), None)
    if loader is None or not obj:  # an unregistered format is refused with --load-format; {} is the default
        out.no_effect.append(written)
        return
    lk = lc.loaders[loader]
    extra = [k for k in obj if k not in lk.no_effect + lk.unsized]
    if lk.keys_as == "none":
        raise InputError(lk.unexpected.format(load_format=load_format, keys=""))
    if extra:
        keys = _pyset(extra) if lk.keys_as == "set" else f"dict_keys({extra!r})"
        raise InputError(lk.unexpected.format(load_format=load_format, keys=keys))
    if loader == "DefaultModelLoader":  # default_loader.py DefaultModelLoader.__init__
        mt = obj.get("enable_multithread_load", False)
        if not isinstance(mt, bool):
            raise InputError(f"ValueError: enable_multithread_load must be a bool, got {type(mt).__name__}")
        nt = obj.get("num_threads")
        if nt is not None and not (isinstance(nt, int) and nt > 0):
            raise InputError(f"ValueError: num_threads must be a positive integer, got {nt!r}")
        if mt and strategy not in (None, "None", "lazy"):  # the parser's choice None is no strategy
            raise InputError(f"ValueError: enable_multithread_load does not support safetensors_load_strategy="
                             f"{strategy!r}; the multi-thread loader only implements the default lazy strategy.")
    elif loader == "RunaiModelStreamerLoader":  # runai_streamer_loader.py RunaiModelStreamerLoader.__init__
        d = obj.get("distributed", False)
        if not isinstance(d, bool):
            raise InputError(f"ValueError: distributed must be a bool, got {d!r}")
        c = obj.get("concurrency", 1)
        if isinstance(c, bool) or not isinstance(c, int) or c <= 0:
            raise InputError(f"ValueError: concurrency must be a positive integer, got {c!r}")
        m = obj.get("memory_limit", -1)
        if isinstance(m, bool) or not isinstance(m, int) or m < -1:
            raise InputError(f"ValueError: memory_limit must be an integer >= -1, got {m!r}")
    unsized = [k for k in obj if k in lk.unsized and obj[k] is not False]
    if unsized:
        out.warnings.append(warning("command.not_modelled", f"{flag}: {', '.join(unsized)} streams the weight "
                                    "files onto each rank's GPU through the streamer's own buffers while the model "
                                    "loads (weight_utils.py runai_safetensors_weights_iterator), which vramcalc does "
                                    "not size: the figures ignore it"))
    else:  # the loader's threads, file names and host reader: the weights on the GPU are the same
        out.no_effect.append(written)


def _overrides(flag: str, written: str, values: list[str], out: Read) -> None:
    mc = features().json_flags.model_class_overrides
    obj = _dict(flag, values, mc.dict_refusal)
    for arch, target in obj.items():
        if not isinstance(target, str):
            raise InputError(mc.type_refusal.format(arch=arch))
        if len(target.split(":")) != 2:  # registry.py ModelRegistry.register_model
            raise InputError(mc.format_refusal)
    classes = load("vllm_model_classes.json", VllmModelClasses).classes
    other = {a: t for a, t in obj.items() if classes.get(a) != t}
    if other:
        out.warnings.append(warning("command.not_modelled", f"{flag}: builds "
                                    + ", ".join(f"{a} as {t}" for a, t in other.items())
                                    + ", not the class vLLM registers for it (vllm/model_executor/models/registry.py "
                                    "_VLLM_MODELS, data/vllm_model_classes.json): its weights, buffers and layers "
                                    "may differ from those vramcalc sizes for the architecture; vramcalc does not "
                                    "model it yet: the figures ignore it"))
    else:  # the same module:class vLLM registers: the model is built as without the flag
        out.no_effect.append(written)


def _weight_transfer(flag: str, written: str, values: list[str], executor: str | None, world: int, dp_ray: bool,
                     out: Read) -> None:
    wt = features().json_flags.weight_transfer
    obj = _object(flag, values, "WeightTransferConfig", wt.fields)
    backend = obj.get("backend", "nccl")
    if not isinstance(backend, str):
        raise _pydantic(flag, "WeightTransferConfig", "backend", "Input should be a valid string")
    if backend not in wt.backends:  # factory.py WeightTransferEngineFactory.create_engine, after the weights load
        raise InputError(wt.unknown_refusal.format(backend=backend, available=wt.backends))
    # unset, ParallelConfig.__post_init__ (vllm/config/parallel.py) picks uni for one worker, mp for more (ray
    # only inside a Ray placement group, or with --data-parallel-backend ray)
    ex = executor or ("uni" if world == 1 else "mp")
    if backend in wt.ray_only and ex != "ray" and not (executor is None and dp_ray):
        raise InputError(wt.ray_only[backend].format(backend=ex))
    # the engine holds nothing at start-up (vLLM 0.34.0 nccl_engine.py, ipc_engine.py, sparse_nccl_engine.py,
    # m2n_engine.py, sharded_rdt_engine.py __init__); each update's buffers: sized (vramcalc/vllm/weight_transfer.py)
    # for the backends with default sizes, the others warned about here
    why = wt.unsized.get(backend)
    if not why:
        out.options["weight_transfer_backend"] = backend
    else:  # the figures are those of the command without it
        out.warnings.append(warning("command.not_modelled", f"{flag}: the {backend} engine holds no device memory "
                                    f"at start-up, but {why}: each weight update takes them beside the KV cache "
                                    f"(vllm/distributed/weight_transfer/, vLLM {wt.version}); vramcalc does not "
                                    "model them: the figures ignore it"))


def _engram(flag: str, written: str, values: list[str]) -> None:
    en = features().json_flags.engram
    obj = _object(flag, values, "EngramConfig", en.fields)
    cpu = obj.get("cpu_offload", True)
    if obj.get("dp_shared_memory") and not cpu:  # EngramConfig._validate_shared_memory
        raise _pydantic(flag, "EngramConfig", "", f"Value error, {en.combination_refusals['dp_shared_memory']}")
    if obj.get("use_thp") and (not cpu or obj.get("dp_shared_memory")):
        raise _pydantic(flag, "EngramConfig", "", f"Value error, {en.combination_refusals['use_thp']}")
    # EngramConfig.verify_model_config: only the architectures of en.architectures, none of which vramcalc reads
    raise InputError(f"{en.refusal} (vLLM 0.33.0 vllm/config/engram.py: only "
                     f"{', '.join(en.architectures)} have n-gram embedding layers; vramcalc sizes none of them)")


def _diffusion_checked(obj: dict[str, Any]) -> dict[str, Any]:
    """DiffusionConfig's own checks (vllm/config/diffusion.py: canvas_length an integer > 0 or unset,
    max_denoising_steps an integer or unset), in pydantic's words as vLLM raises them."""
    di = features().json_flags.diffusion
    for key in ("canvas_length", "max_denoising_steps"):
        v = obj.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise InputError(f"ValidationError: 1 validation error for DiffusionConfig {key} Input should be a valid "
                             "integer")
    cl = obj.get("canvas_length")
    if cl is not None and cl <= 0:
        raise InputError(di.refusal)
    return obj


def diffusion_object(value: Any) -> dict[str, Any]:
    """--diffusion-config as a library caller gives it (JSON text or a dict), refused as
    EngineArgs.create_diffusion_config refuses it (vllm/engine/arg_utils.py: json.loads, then DiffusionConfig(**cfg))."""
    text = value if isinstance(value, str) else json.dumps(value)
    return _diffusion_checked(_object("--diffusion-config", [text], "DiffusionConfig",
                                      features().json_flags.diffusion.fields, built=True))


def _diffusion(flag: str, written: str, values: list[str], out: Read) -> None:
    di = features().json_flags.diffusion
    # sized as vramcalc/vllm/diffusion.py reads it (VLLMOptions.diffusion_config)
    out.options["diffusion_config"] = _diffusion_checked(_object(flag, values, "DiffusionConfig", di.fields,
                                                                 built=True))


def _ec_transfer(flag: str, written: str, values: list[str], out: Read) -> None:
    ec = features().json_flags.ec_transfer
    obj = _object(flag, values, "ECTransferConfig", ec.fields)
    role, conn = obj.get("ec_role"), obj.get("ec_connector")
    if role is not None and role not in ec.roles:
        raise _pydantic(flag, "ECTransferConfig", "ec_role", "Input should be "
                        + ", ".join(repr(r) for r in ec.roles[:-1]) + f" or {ec.roles[-1]!r}")
    if conn is not None and role is None:
        raise _pydantic(flag, "ECTransferConfig", "", f"Value error, {ec.role_refusal}")
    # the scheduler builds the connector whenever the flag is given (v1/core/sched/scheduler.py Scheduler.__init__)
    if conn is None:
        raise InputError(ec.no_connector_refusal)
    if conn not in ec.connectors and not obj.get("ec_connector_module_path"):
        raise InputError(ec.unknown_refusal.format(connector=conn))
    out.options["ec_role"] = role
    if role == "ec_producer":  # its encoder-only profile (vllm/v1/worker/mm_encoder_model_runner.py) is not sized
        out.warnings.append(warning("command.not_modelled", f"{flag}: {conn} as ec_producer: an encoder-only "
                                    "instance, no language model and no KV cache, on a multimodal model only "
                                    f"({ec.text_only_refusal.removeprefix('ValueError: ')}), whose tower profile and "
                                    "encoder cache (vllm/v1/worker/mm_encoder_model_runner.py MMEncoderModelRunner) "
                                    "and the connector's own buffers (vllm/distributed/ec_transfer/ec_connector/, "
                                    "0.34.0) vramcalc does not size: the figures ignore it"))
        return
    # a consumer takes the producer's encoder outputs as precomputed embeddings (VllmConfig._resolve_mm_embedding_
    # inputs turns --enable-mm-embeds on): sized as such (vramcalc/vllm/mm_embeds.py); ECExampleConnector loads them
    # from its shared files straight into the encoder cache (example_connector.py), the others keep buffers of their own
    if conn != "ECExampleConnector" or role == "ec_both":
        what = ("the encoder outputs it also sends (ec_both), and " if role == "ec_both" else "") + \
            f"{conn}'s own buffers (vllm/distributed/ec_transfer/ec_connector/: cpu/ shared host regions, mooncake/ " \
            "registered memory, 0.34.0)"
        out.warnings.append(warning("command.not_modelled", f"{flag}: {conn} as {role}: the encoder outputs it "
                                    f"receives are sized as precomputed embeddings, but not {what}: the figures "
                                    "ignore it"))


def _ec_manager(flag: str, written: str, values: list[str], out: Read) -> None:
    em = features().json_flags.ec_manager
    obj = _object(flag, values, "EncoderCacheManagerConfig", em.fields)
    cls = obj.get("encoder_cache_manager_cls")
    if obj.get("manager_config") is not None and cls is None:
        raise _pydantic(flag, "EncoderCacheManagerConfig", "", f"Value error, {em.refusal}")
    if cls is None:  # vLLM's own encoder cache manager, as without the flag
        out.no_effect.append(written)
        return
    out.warnings.append(warning("command.not_modelled", f"{flag}: {cls} is built in place of vLLM's encoder cache "
                                "manager (vllm/config/ec_manager_config.py), a class vramcalc cannot read; vramcalc "
                                "does not model it: the figures ignore it"))


def read(flags: list[tuple[str, str, str, list[str]]], load_format: str | None, strategy: str | None,
         executor: str | None, gdn_flag: bool, world: int = 1, dp_ray: bool = False) -> Read:
    """Each (field, flag, as written, values) of the JSON flags, with the --load-format, --safetensors-load-strategy
    and --distributed-executor-backend of the command, whether --gdn-prefill-backend is given, the workers across
    TP x PP x DP and whether --data-parallel-backend is ray."""
    out = Read()
    by: dict[str, tuple[str, str, list[str]]] = {}
    for fld, flag, written, values in flags:  # a repeated flag or its dotted keys: one object
        _, _, prev = by.get(fld, (flag, written, []))
        by[fld] = (flag, written if not prev else f"{by[fld][1]} {written}", prev + values)
    for fld, (flag, written, values) in by.items():
        if fld == "additional_config":
            _additional(flag, written, values, gdn_flag, out)
        elif fld == "model_loader_extra_config":
            _loader(flag, written, values, load_format or "auto", strategy, out)
        elif fld == "model_class_overrides":
            _overrides(flag, written, values, out)
        elif fld == "weight_transfer_config":
            _weight_transfer(flag, written, values, executor, world, dp_ray, out)
        elif fld == "engram_config":
            _engram(flag, written, values)
        elif fld == "diffusion_config":
            _diffusion(flag, written, values, out)
        elif fld == "ec_transfer_config":
            _ec_transfer(flag, written, values, out)
        elif fld == "ec_manager_config":
            _ec_manager(flag, written, values, out)
    return out
