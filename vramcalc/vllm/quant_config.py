"""vLLM's --quantization-config, read and refused as its parser does (vllm/config/quantization.py
QuantizationConfigArgs / QuantSpec validators, v0.33.0 and v0.34.0; data/vllm_quant_config.json holds the names each
release accepts). The weight bytes the specs imply are not sized (data/command_flags.json says why);
tests/data/vllm_quant_config_oracle_v<release>.json is vLLM's own answer to the same values."""

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
