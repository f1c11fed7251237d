"""vLLM's --quantization-config, read and refused as its parser does (vllm/config/quantization.py
QuantizationConfigArgs / QuantSpec validators, v0.33.0 and v0.34.0; data/vllm_quant_config.json holds the names each
release accepts); tests/data/vllm_quant_config_oracle_v<release>.json is vLLM's own answer to the same values.
online_scheme sizes the linear formats whose post-load layout is checked against vLLM's own online methods
(tests/data/vllm_online_quant_oracle_v0.34.0.json); data/command_flags.json says what is not sized and why."""

from __future__ import annotations

import json
import re
from typing import Any

from ..data_files import load
from ..data_models import VllmQuantConfig, VllmQuantConfigRelease
from ..errors import InputError

FLAG = "--quantization-config"
FIELDS = ("linear", "moe", "ignore", "targets")  # QuantizationConfigArgs; @config forbids other keys


def _release(version: str | None) -> VllmQuantConfigRelease:
    """The table of `version` (None: the default release), or of the nearest lower release it has."""
    from .engine import _key, vllm_rules

    v = _key(version or vllm_rules().default_version)
    releases = load("vllm_quant_config.json", VllmQuantConfig).releases
    known = sorted(releases, key=_key)
    lower = [r for r in known if _key(r) <= v]
    return releases[(lower or known)[-1]]


def _refuse(loc: str, msg: str) -> InputError:
    """pydantic's refusal as `vllm serve` prints it (argparse wraps it; its [type=...] and link left out)."""
    return InputError(f"vllm serve: error: argument {FLAG}: 1 validation error for QuantizationConfigArgs "
                      f"{loc} {msg}".replace("  ", " "))


def _key_name(loc: str, v: Any, rel: VllmQuantConfigRelease) -> str | None:
    """_coerce_quant_key: None, or a name in QUANT_KEY_NAMES."""
    if v is None:
        return None
    if not isinstance(v, str):
        raise _refuse(loc, f"TypeError: expected str or QuantKey, got {type(v).__name__}")
    if v not in rel.quant_key_names:
        raise _refuse(loc, f"Value error, unknown quantization name {v!r}; expected one of "
                           f"{sorted(rel.quant_key_names)}")
    return v


def _spec(loc: str, v: Any, rel: VllmQuantConfigRelease) -> dict[str, Any]:
    """A QuantSpec from its JSON object: its fields only; weight / activation names; hadamard_size a power of
    two (QuantSpec._check_hadamard_size, 0.34.0)."""
    if not isinstance(v, dict):
        raise _refuse(loc, "Input should be an object")
    for k in v:
        if k not in rel.spec_fields:
            raise _refuse(f"{loc}.{k}", "Unexpected keyword argument")
    out: dict[str, Any] = {}
    for k in ("weight", "activation"):
        if k in v:
            out[k] = _key_name(f"{loc}.{k}", v[k], rel)
    h = v.get("hadamard_size")
    if h is not None:
        if not isinstance(h, int) or isinstance(h, bool):
            raise _refuse(f"{loc}.hadamard_size", "Input should be a valid integer")
        if h <= 0 or h & (h - 1):
            raise _refuse(f"{loc}.hadamard_size", f"Value error, hadamard_size must be a power of two, got {h}")
        out["hadamard_size"] = h
    return out


def _layer_spec(kind: str, v: Any, rel: VllmQuantConfigRelease) -> dict[str, Any] | str | None:
    """QuantizationConfigArgs._coerce_spec: a shorthand's spec for this layer kind, a QUANT_KEY_NAMES name as the
    weight, or a spec object."""
    if v is None:
        return None
    if isinstance(v, str):
        if v in rel.shorthands:
            if kind not in rel.shorthands[v]:
                raise _refuse(kind, f"Value error, online shorthand {v!r} does not define a {kind} spec")
            return v
        return {"weight": _key_name(kind, v, rel)}
    return _spec(kind, v, rel)


def read(values: list[str], version: str | None = None) -> dict[str, Any]:
    """The flag's JSON (the last one given, as argparse keeps it), checked as vLLM 0.33.0 / 0.34.0 check it;
    returns the object."""
    rel = _release(version)
    raw = values[-1] if values else ""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        raise _refuse("", "Invalid JSON") from None
    if not isinstance(obj, dict):
        raise _refuse("", "Input should be an object")
    for k in obj:
        if k not in FIELDS:
            raise _refuse(k, "Unexpected keyword argument")
    linear = _layer_spec("linear", obj.get("linear"), rel)
    moe = _layer_spec("moe", obj.get("moe"), rel)
    ignore = obj.get("ignore", [])
    if not isinstance(ignore, list):
        raise _refuse("ignore", "Input should be a valid array")
    for i, p in enumerate(ignore):
        if not isinstance(p, str):
            raise _refuse(f"ignore.{i}", "Input should be a valid string")
    targets = obj.get("targets")
    if targets is not None:
        if not isinstance(targets, dict):  # _validate_targets' TypeError, which argparse reports as a bad type
            raise InputError(f"vllm serve: error: argument {FLAG}: invalid _optional_type value: {raw!r}")
        for pattern, target in targets.items():
            if isinstance(target, str):
                if target not in rel.shorthands:
                    raise _refuse("targets", f"Value error, targets[{pattern}] = {target} is not a valid online "
                                             f"shorthand name; expected one of {sorted(rel.shorthands)}")
            elif rel.target_specs and isinstance(target, dict):
                _spec(f"targets.{pattern}", target, rel)
            elif rel.target_specs:
                raise _refuse("targets", f"Value error, targets[{pattern}] must be an online shorthand name or a "
                                         f"quantization spec, got {type(target).__name__}")
            else:
                raise _refuse("targets", f"Value error, targets[{pattern}] = {target} is not a valid online "
                                         f"shorthand name; expected one of {sorted(rel.shorthands)}")
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as e:
                    raise _refuse("targets", f"Value error, targets key {pattern} is not a valid regex: {e}") from None
        if linear is not None or moe is not None:
            raise _refuse("", "Value error, quantization_config.targets is mutually exclusive with "
                              f"quantization_config.linear/moe, got targets={targets}, linear={_str(linear)}, "
                              f"moe={_str(moe)}.")
    return obj


def _str(spec: dict[str, Any] | str | None) -> str:
    """str(QuantSpec) as 0.34.0 writes it (the weight's name; JSON when activation is given)."""
    if spec is None:
        return "None"
    if isinstance(spec, str):
        return spec
    if "activation" not in spec:
        name = str(spec.get("weight"))
    else:
        name = json.dumps({"weight": spec.get("weight"), "activation": spec["activation"]}, separators=(",", ":"))
    return f"{name}_hadamard{spec['hadamard_size']}" if spec.get("hadamard_size") else name


# The linear weight formats whose post-load bytes vramcalc sizes (checked against vLLM 0.34.0's own online methods
# run on CPU, tests/data/vllm_online_quant_oracle_v0.34.0.json): an fp8 weight ([in, out] after loading, the same
# bytes) and fp32 scales, one per fused module (Fp8PerTensorOnlineLinearMethod) or one per output row
# (Fp8PtpcOnlineLinearMethod, weight_scale [out, 1]); vllm/model_executor/layers/quantization/online/fp8.py. On CUDA
# SM 8.9+ their GEMM is CutlassFP8ScaledMMLinearKernel, which pads K and N to 16 (a fused module's N is padded as a
# whole: vramcalc pads each shard, the same where the shards are multiples of 16, as in every catalog model).
_LINEAR_SIZED = {"fp8_per_tensor_static": ("fp8_tensor", True), "fp8_per_channel_static": ("fp8_channel", False)}
# what vLLM's online linear methods take: LinearBase layers (the attention and MLP projections, shared experts,
# the routers built as ReplicatedLinear, Mamba projections); embeddings and the LM head are not LinearBase
_LINEAR_GROUPS = ("attention", "dense_mlp", "shared_experts", "router", "ssm")


def _weight(spec: dict[str, Any] | str | None, kind: str, rel: VllmQuantConfigRelease) -> str | None:
    """The weight name a linear / moe value resolves to (a shorthand's spec for that kind)."""
    if spec is None:
        return None
    if isinstance(spec, str):  # a shorthand: the weight of its spec
        return rel.shorthand_weights.get(spec, spec)
    return spec.get("weight")


# the layer class vLLM builds first of each kind, whose name the build-time refusal carries (online/base.py
# OnlineQuantizationConfig._get_method_cls: layer_cls.__name__): a Llama / Qwen-style decoder layer's qkv_proj, as in
# the oracle's rows; a model whose first linear layer is another (MLA's fused_qkv_a_proj, a Mamba in_proj) names
# that class instead, which this text does not follow
_FIRST_LAYER = {"linear": "QKVParallelLinear", "moe": "RoutedExperts"}


def _takes(kind: str, spec: dict[str, Any] | str | None, methods: list[str], rel: VllmQuantConfigRelease) -> None:
    """OnlineQuantizationConfig._get_method_cls (0.34.0): a weight no online method of the layer kind takes is
    refused as the model is built, and hadamard_size on another method than MXFP4 linear; int4_per_group_32 leaves
    the layer to the checkpoint's method."""
    w = _weight(spec, kind, rel)
    if w is None or not methods or w == "int4_per_group_32":
        return
    if w not in methods:
        raise InputError(f"ValueError: online quantization for {_FIRST_LAYER[kind]} with weight="
                         f"{rel.weight_keys[w]} is not supported; supported weight keys: "
                         f"{sorted(rel.weight_keys[m] for m in methods)}")
    hadamard = spec.get("hadamard_size") if isinstance(spec, dict) else (32 if spec == "mxfp4_hadamard32" else None)
    if hadamard is not None and not (kind == "linear" and w == "mxfp4"):
        cls = {"fp8_per_tensor_static": "Fp8PerTensorOnline", "fp8_per_channel_static": "Fp8PtpcOnline",
               "fp8_per_block_static": "Fp8PerBlockOnline", "mxfp8": "Mxfp8Online", "mxfp4": "Mxfp4Online",
               "int8_per_channel_static": "Int8Online", "nvfp4_static": "Nvfp4Online", "lut_b": "LutBOnline"}[w]
        cls += "LinearMethod" if kind == "linear" else "MoEMethod"
        raise InputError(f"NotImplementedError: hadamard_size is not yet supported for online {cls}; supported: "
                         "['Mxfp4OnlineLinearMethod']")


# --quantization names that are also checkpoint formats (config/quantization.py _DEFERRED_ONLINE_SHORTHANDS): on an
# unquantized checkpoint they are vramcalc's own targets (data/quant_targets.json), not read here
_DEFERRED = ("mxfp4", "mxfp8")


def is_online(quantization: str | None, has_config: bool, version: str | None = None) -> bool:
    """Whether vLLM builds OnlineQuantizationConfig from `--quantization` (with or without --quantization-config):
    `online` or an online shorthand (ONLINE_QUANT_SHORTHAND_NAMES), and `fp8` beside a --quantization-config
    (model_loader/weight_utils.py get_quant_config merges it into fp8_per_tensor; alone it is vramcalc's fp8
    target). vLLM 0.34.0 vllm/config/quantization.py resolve_quantization_config."""
    if not quantization:
        return False
    rel = _release(version)
    return quantization == "online" or (quantization in rel.shorthands and quantization not in _DEFERRED) or \
        (quantization == "fp8" and has_config)


def merged(quantization: str, values: list[str], version: str | None = None) -> list[str]:
    """The --quantization-config value vLLM ends with for `--quantization NAME` (a shorthand, or fp8 as
    fp8_per_tensor) and the flag's JSON: the shorthand's linear / moe, each replaced by the flag's where it sets one;
    from 0.34.0 a spec object of the flag keeps the shorthand's weight where it sets none
    (merge_quantization_config); ignore and targets the flag's. `online` takes the flag's JSON as it is."""
    if quantization == "online":
        if not values:  # online/base.py OnlineQuantizationConfig.__init__
            raise InputError("OnlineQuantizationConfig requires at least one of quantization_config.linear, "
                             "quantization_config.moe, or quantization_config.targets to be set.")
        return values
    rel = _release(version)
    name = "fp8_per_tensor" if quantization == "fp8" else quantization
    obj = read(values, version) if values else {}
    out: dict[str, Any] = {k: obj[k] for k in ("ignore", "targets") if obj.get(k)}
    from .engine import _key, vllm_rules

    merges = _key(version or vllm_rules().default_version) >= _key("0.34.0")
    for kind in ("linear", "moe"):
        base = name if kind in rel.shorthands.get(name, []) else None
        given = obj.get(kind)
        if given is None:
            if base is not None:
                out[kind] = base
        elif isinstance(given, dict) and "weight" not in given and base is not None and merges:
            out[kind] = {"weight": _weight(base, kind, rel), **given}
        else:
            out[kind] = given
    return [json.dumps(out)]


def _ignore(patterns: list[str]) -> tuple[str, ...]:
    """An online ignore list in vramcalc's pattern language (quant.py _ignore_regex): vLLM matches a name exactly, by
    fnmatch or, with `re:`, by re.match (quantization/utils/config_utils.py is_equal_or_regex_match, use_fnmatch);
    vramcalc reads a plain name as a substring, so it is given as an anchored regex."""
    return tuple(p if p.startswith("re:") or any(c in p for c in "*?[") else f"re:{re.escape(p)}$" for p in patterns)


def online_scheme(values: list[str], version: str | None = None, experts: bool = True) -> tuple[Any, list[str]]:
    """(the QuantScheme of the linear layers, what is not sized) for `--quantization online --quantization-config
    JSON` on an unquantized checkpoint (vLLM 0.34.0 online/base.py OnlineQuantizationConfig.get_quant_method:
    linear for LinearBase layers, moe for the routed experts, ignore leaving the layers it names unquantized).
    The routed experts' online formats are not sized (their post-load step does not run on a CPU machine): they
    stay at the checkpoint dtype, an upper bound; so are the linear formats outside _LINEAR_SIZED, and targets
    unless every pattern gives the linear layers one sized format (then only the layers they match are quantized).
    experts: whether the model has routed experts (vLLM checks the moe spec only as it builds them)."""
    from ..quant import QuantScheme

    rel = _release(version)
    obj = read(values, version)
    linear = _layer_spec("linear", obj.get("linear"), rel)
    moe = _layer_spec("moe", obj.get("moe"), rel)
    unsized: list[str] = []
    for kind, spec, methods in (("linear", linear, rel.linear_methods), ("moe", moe, rel.moe_methods)):
        if kind == "linear" or experts:  # a model without routed experts builds no layer the moe spec names
            _takes(kind, spec, methods, rel)
    w = _weight(linear, "linear", rel)
    if w is not None and (w not in _LINEAR_SIZED or (isinstance(linear, dict) and linear.get("hadamard_size"))):
        unsized.append(f"linear {_str(linear)}")
    if experts and _weight(moe, "moe", rel) not in (None, "int4_per_group_32"):
        unsized.append(f"moe {_str(moe)} (the routed experts sized at the checkpoint dtype, an upper bound)")
    only: tuple[str, ...] = ()
    targets = obj.get("targets") or {}
    if targets:  # linear / moe are unset: each pattern's spec for the layer kind it matches (shorthand or spec)
        lin = [t if isinstance(t, dict) else ("{}" if "linear" not in rel.shorthands.get(t, []) else t)
               for t in targets.values()]
        for t in lin:
            if t != "{}":
                _takes("linear", t, rel.linear_methods, rel)
        weights = {_weight(t, "linear", rel) if t != "{}" else None for t in lin}
        hadamard = any(isinstance(t, dict) and t.get("hadamard_size") or t == "mxfp4_hadamard32" for t in lin)
        if len(weights) == 1 and next(iter(weights)) in _LINEAR_SIZED and not hadamard:
            w, linear, only = next(iter(weights)), None, _ignore(list(targets))
        else:
            unsized.append("targets (the layers they name sized at the checkpoint dtype)")
        moe_t = [t for t in targets.values() if isinstance(t, dict) or "moe" in rel.shorthands.get(t, [])]
        if experts and moe_t:
            unsized.append("targets on the routed experts, where a pattern names them (sized at the checkpoint "
                           "dtype, an upper bound)")
    if w not in _LINEAR_SIZED or (isinstance(linear, dict) and linear.get("hadamard_size")):
        return QuantScheme(method="none"), unsized
    method, per_module = _LINEAR_SIZED[w]
    return QuantScheme(method=method, bits=8, scale_dtype="float32", ignore=_ignore(obj.get("ignore") or []), only=only,
                       quantize_groups=_LINEAR_GROUPS, one_scale_per_module=per_module, pad_to=16, fused_names=True,
                       source="vllm/model_executor/layers/quantization/online/fp8.py (v0.34.0)"), unsized


# vLLM's fused linear modules and their shards (packed_modules_mapping of the catalog's decoder layers)
_SHARDS = {"self_attn.qkv_proj": ("q_proj", "k_proj", "v_proj"), "mlp.gate_up_proj": ("gate_proj", "up_proj")}


def shard_ignore_refusal(spec: Any, scheme: Any) -> InputError | None:
    """An online ignore list that takes some shards of a fused module and not the others: vLLM refuses it as it
    builds the first such layer (v0.34.0 quantization/compressed_tensors/utils.py should_ignore_layer)."""
    from ..params import inventory
    from ..quant import _ignored, module_names

    if not scheme.fused_names or not scheme.ignore:
        return None
    composite = spec.vision is not None
    seen: dict[str, list[bool]] = {}
    for t in inventory(spec):
        m = re.match(r"(model\.layers\.\d+)\.(self_attn|mlp)\.(\w+)\.weight$", t.name)
        if not m:
            continue
        fused = next((f for f, shards in _SHARDS.items() if f.startswith(m.group(2)) and m.group(3) in shards), None)
        if fused is not None:
            seen.setdefault(f"{m.group(1)}.{fused}", []).append(_ignored(module_names(t, composite, True),
                                                                        scheme.ignore))
    for name, ignored in seen.items():
        if any(ignored) and not all(ignored):
            return InputError(f"ValueError: Found different quantization schemes for the shards of {name}. vLLM "
                              "requires all to use the same scheme.")
    return None
