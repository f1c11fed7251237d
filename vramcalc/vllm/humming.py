"""vLLM's Humming quantization method (`--quantization humming`) and the two variables it reads,
VLLM_HUMMING_ONLINE_QUANT_CONFIG (the weight schema each layer of an unquantized checkpoint is quantized to as it
loads) and VLLM_HUMMING_INPUT_QUANT_CONFIG (the activation schema), as vLLM 0.34.0 reads them
(vllm/model_executor/layers/quantization/humming.py HummingConfig.get_quant_config_for_layer; the schema classes of
humming-kernels, github.com/vllm-project/humming humming/schema/humming.py; data/vllm_humming.json). What vLLM
refuses of them is refused in its words (checked against vLLM's own code on CPU,
tests/data/vllm_humming_oracle_v0.34.0.json)."""

from __future__ import annotations

import json
import re
from typing import Any

from ..data_files import load
from ..data_models import VllmHumming
from ..errors import InputError

ONLINE = "VLLM_HUMMING_ONLINE_QUANT_CONFIG"
INPUT = "VLLM_HUMMING_INPUT_QUANT_CONFIG"


def rules() -> VllmHumming:
    return load("vllm_humming.json", VllmHumming)


def read_json(name: str, value: str) -> Any:
    """The variable's JSON as vllm/envs.py maybe_convert_json_str_or_file reads it (json.loads; a value naming a file
    that exists is read from it, which vramcalc cannot do: such a value is refused with what vLLM says where the file
    does not exist, and how to give its JSON inline)."""
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        hint = "" if value.lstrip().startswith(("{", "[")) else \
            f" (vLLM reads {name} from a file where one of that name exists; give its JSON inline)"
        raise InputError(f"JSONDecodeError: {e}{hint}") from None


def _fields(config: dict[str, Any], fields: dict[str, list[str]]) -> dict[str, Any]:
    """humming/schema/base.py BaseWeightSchema.from_config: each field by its name, else its first alias present;
    keys that name no field are dropped without a word."""
    out: dict[str, Any] = {}
    for name, aliases in fields.items():
        if name in config:
            out[name] = config[name]
        else:
            for a in aliases:
                if a in config:
                    out[name] = config[a]
                    break
    return out


_INT = re.compile(r"^(u*)int(\d+)$")
_FLOAT = re.compile(r"^float(\d+)_*e(\d+)m(\d+)$")


def _dtype(value: Any) -> tuple[str, int, bool]:
    """(canonical name, bits, signed) of a humming DataType string (humming/dtypes.py DataType.from_str), or vLLM's
    exception in its words."""
    if not isinstance(value, str):  # kept as given by __post_init__, read as a DataType by get_tensors_attrs
        raise InputError(f"AttributeError: '{type(value).__name__}' object has no attribute 'num_bits'")
    if "float" in value:
        s = value.lower()
        named = {"float16": (16, 5, 10), "half": (16, 5, 10), "bfloat16": (16, 8, 7), "float32": (32, 8, 23)}
        if s in named:
            bits, ex, ma = named[s]
        else:
            m = _FLOAT.findall(s)
            if not m:
                raise InputError(f"ValueError: invalid floating point dtype: {s}")
            bits, ex, ma = (int(x) for x in m[0])
        if bits - ex - ma not in (0, 1):  # FloatingPointType.__post_init__: the sign takes 0 or 1 bit
            raise InputError("AssertionError: ")
        return f"float{bits}e{ex}m{ma}", bits, bits - ex - ma == 1
    if "int" in value:
        s = value.lower()
        m = _INT.findall(s)
        if not m:
            raise InputError(f"ValueError: invalid integer dtype: {s}")
        return f"{m[0][0]}int{m[0][1]}", int(m[0][1]), m[0][0] == ""
    raise InputError("NotImplementedError: ")


def weight_schema(config: Any) -> dict[str, Any]:
    """HummingWeightSchema(**from_config(config)) as humming builds it (__post_init__): b_dtype (an integer dtype made
    unsigned), bs_dtype, the group sizes, the scale's kind (block where group_size_n > 1, channel where group_size is
    0, group otherwise, unless given), the second scale, the zero point. What it raises is refused in its words."""
    r = rules()
    config = config or {}  # get_quant_config_for_layer: `VLLM_HUMMING_ONLINE_QUANT_CONFIG or {}`, then
    if isinstance(config, list):  # online_quant_config["quant_method"] = "humming"
        raise InputError("TypeError: list indices must be integers or slices, not str")
    if not isinstance(config, dict):
        raise InputError(f"TypeError: '{type(config).__name__}' object does not support item assignment")
    kw = _fields(config, r.weight_fields)
    if "b_dtype" not in kw:
        raise InputError("TypeError: HummingWeightSchema.__init__() missing 1 required keyword-only argument: "
                         "'b_dtype'")
    name, bits, _ = _dtype(kw["b_dtype"])
    bs = _dtype(kw["bs_dtype"])[0] if isinstance(kw.get("bs_dtype"), str) else kw.get("bs_dtype")
    gs, gsn = kw.get("weight_scale_group_size", 0), kw.get("weight_scale_group_size_n", 0)
    kind = kw.get("weight_scale_type")
    if isinstance(kind, str):
        if kind not in r.weight_scale_types:
            raise InputError(f"ValueError: '{kind}' is not a valid WeightScaleType")
    elif kind is None:
        kind = "block" if gsn > 1 else "channel" if gs == 0 else "group" if gs > 0 else None
    scale2 = kw.get("weight_scale_2_type")
    if isinstance(scale2, str) and scale2 not in r.weight_scale_2_types:
        raise InputError(f"ValueError: '{scale2}' is not a valid WeightScale2Type")
    scale2 = scale2 or "none"
    if scale2 != "none" and kind != "group":
        raise InputError("AssertionError: weight_scale_2_type requires weight_scale_type='group'")
    if kind == "block":
        bs = "float32"
    zp, fp_zp = bool(kw.get("has_zero_point", False)), bool(kw.get("is_fp_zero_point", False))
    if zp and not fp_zp and kind != "group":  # get_tensors_attrs, as create_weights calls it
        raise InputError("AssertionError: ")
    if name.startswith("int"):
        name = "u" + name
    return {"b_dtype": name, "bits": bits, "bs_dtype": bs, "group_size": gs, "group_size_n": gsn,
            "scale_type": kind, "scale2": scale2, "zero_point": zp, "fp_zero_point": fp_zp}


def input_schema(config: Any) -> dict[str, Any]:
    """HummingInputSchema(**from_config(config)) (humming/schema/humming.py): a_dtype, the scale's group size and
    dtype, the quantization mode; what it raises is refused in vLLM's words."""
    r = rules()
    if not config:  # get_quant_config_for_layer: `if envs.VLLM_HUMMING_INPUT_QUANT_CONFIG:`, then .copy() and
        return {}  # quant_config["quant_method"] = "humming"
    if isinstance(config, list):
        raise InputError("TypeError: list indices must be integers or slices, not str")
    if not isinstance(config, dict):
        raise InputError(f"AttributeError: '{type(config).__name__}' object has no attribute 'copy'")
    kw = _fields(config, r.input_fields)
    for f in ("a_dtype", "input_scale_dtype"):
        if isinstance(kw.get(f), str):
            kw[f] = _dtype(kw[f])[0]
    mode = kw.get("input_quant_mode")
    if isinstance(mode, str) and mode not in r.input_quant_modes:
        raise InputError(f"ValueError: '{mode}' is not a valid InputQuantizationMode")
    return kw


def static_input_scale(schema: dict[str, Any]) -> bool:
    """HummingInputSchema.static_tensor_scale_name: the static modes keep one fp32 scale a linear module."""
    return schema.get("input_quant_mode") in ("static_tensor", "static_tensor_dynamic_group")


def skip_patterns(config: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """(the layers HummingConfig.is_layer_skipped leaves unquantized: the first of ignored_layers / ignore /
    modules_to_not_convert that is set, and the `-:` regexes of `dynamic`; whether `dynamic` overrides some layers'
    schema with `+:` patterns, which scheme() reads as QuantScheme.overrides)."""
    pats: list[str] = []
    for key in rules().ignore_keys:  # QuantizationConfig.get_from_keys_or: the first key present
        if key in config:
            pats = list(config[key] or [])
            break
    dyn = config.get("dynamic") or {}
    pats += ["re:" + p[2:] for p in dyn if isinstance(p, str) and p[:1] == "-"]
    return tuple(str(p) for p in pats), any(isinstance(p, str) and p.startswith("+") for p in dyn)


def skipped(names: list[str], patterns: tuple[str, ...]) -> bool:
    """is_layer_skipped: a `re:` pattern re.match-es the layer's prefix, any other is a substring of it; the LM head
    is never quantized (a layer named lm_head)."""
    for name in names:
        for p in patterns:
            if (re.match(p[3:], name) if p.startswith("re:") else p in name):
                return True
    return False


def scheme(online: str | None, input_config: str | None, dtype: str) -> tuple[Any, list[str]]:
    """(the QuantScheme, what is not sized) of `--quantization humming` on an unquantized checkpoint: every linear
    layer (LinearBase: attention, MLP, shared experts, routers, Mamba projections; not embeddings or the LM head)
    whose input size and input partition are multiples of 32, and the routed experts, quantized to the schema of
    VLLM_HUMMING_ONLINE_QUANT_CONFIG as they load (HummingConfig.get_quant_method), each module padded to N, K
    multiples of 256, 128 after loading. Without the variable vLLM builds the schema from {} and refuses it."""
    from ..quant import QuantScheme, safe_pattern
    from .quant_config import _LINEAR_GROUPS

    r = rules()
    cfg = read_json(ONLINE, online) if online is not None else {}
    w = weight_schema(cfg)
    static = False
    if input_config is not None:
        static = static_input_scale(input_schema(read_json(INPUT, input_config)))
    pats, _ = skip_patterns(cfg)
    for p in pats:
        if p.startswith("re:"):
            safe_pattern(p[3:])
    overrides: list[tuple[str, str]] = []
    dyn = cfg.get("dynamic") if isinstance(cfg, dict) else None
    if isinstance(dyn, dict):  # utils/humming/schema.py resolve_humming_layer_config: the first +: pattern that
        for p, over in dyn.items():  # re.match-es the layer's prefix updates the config for it
            if isinstance(p, str) and p.startswith("+"):
                safe_pattern(p[2:])
                overrides.append((p[2:], json.dumps({**cfg, **(over if isinstance(over, dict) else {})})))
    base = QuantScheme(
        method="humming", quantize_groups=_LINEAR_GROUPS + ("routed_experts",),
        pad_nk=(r.pad_n_to_multiple, r.pad_k_to_multiple), min_k=r.online_min_k_multiple, fused_names=True,
        static_input_scale=static, ignore=pats, overrides=tuple(overrides), param_dtype=dtype,
        source="vllm/model_executor/layers/quantization/humming.py (v0.34.0); humming/schema/humming.py")
    return layer_scheme(base, w, dtype), []


def layer_scheme(base: Any, w: dict[str, Any], dtype: str) -> Any:
    """`base` (a humming QuantScheme) with the weight schema `w` (weight_schema's reading)."""
    one_byte = w["bs_dtype"] in rules().one_byte_scale_dtypes
    return base.model_copy(update={
        "bits": w["bits"], "group_size": w["group_size"], "block": (w["group_size_n"], w["group_size"]),
        "zero_point": w["zero_point"], "fp_zero_point": w["fp_zero_point"], "scale_type": w["scale_type"] or "",
        "scale2": w["scale2"], "scale_dtype": "fp8" if one_byte else dtype})


def for_layer(s: Any, names: list[str]) -> Any:
    """The scheme of the layer named `names` (vLLM's prefix): the first `dynamic` +: override matching it, else s.
    An override's schema vLLM refuses is refused where a layer takes it (get_quant_config_for_layer)."""
    for pattern, cfg in s.overrides:
        if any(re.match(pattern, n) for n in names):
            return layer_scheme(s, weight_schema(json.loads(cfg)), s.param_dtype)
    return s
