"""vLLM --hf-overrides: a JSON object applied onto the model's config before the model is built (vLLM 0.30.0
vllm/config/model.py ModelConfig.__post_init__ / _apply_dict_overrides, vllm/transformers_utils/config.py get_config;
the rules are data/vllm.json hf_overrides). vramcalc applies it to the config.json it read and builds the ModelSpec
again, so layer counts, KV heads, experts, windows and lengths change the figures as they change vLLM's."""

from __future__ import annotations

import copy
import json
from typing import Any

from ..errors import ConfigError, InputError, NotModelledError
from ..spec import ModelSpec
from .weights import vllm_rules

_LAYER_TYPE = {"full": "full_attention", "sliding": "sliding_attention", "chunked": "chunked_attention"}


def json_object_arg(flag: str, v: Any, what: str) -> dict[str, Any]:
    """A serve flag's JSON-object value as vLLM's parser takes it (vllm/engine/arg_utils.py, json.loads), or the
    dict a library caller passes; `what` names what the object holds, for the refusal."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise InputError(f"argument {flag}: invalid loads value: {v!r:.80} ({e.msg})") from None
    if not isinstance(v, dict):
        raise InputError(f"argument {flag}: a JSON object of {what} is needed, got {v!r:.80}")
    return v


def parse_hf_overrides(v: Any) -> dict[str, Any]:
    """--hf-overrides: a JSON object of config keys."""
    return json_object_arg("--hf-overrides", v, "config keys")


def _merge(target: dict[str, Any], updates: dict[str, Any]) -> None:
    """ModelConfig._update_nested: an object value merges into an existing object, anything else is set."""
    for k, v in updates.items():
        if isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = v


def _refuse_keys(overrides: dict[str, Any]) -> None:
    rules = vllm_rules().hf_overrides
    keys = [k for k in overrides if k not in rules.keys]
    nested = overrides.get("text_config")
    if isinstance(nested, dict):
        keys += [f"text_config.{k}" for k in nested if k not in rules.keys or k == "text_config"]
    if keys:
        raise NotModelledError(
            f"--hf-overrides {', '.join(keys)}: not modelled (vramcalc applies {', '.join(rules.keys)}, each checked "
            "against vLLM's own planner, tests/data/vllm_flag_oracle.json); remove the key(s) to check the rest")
    for where, d in (("", overrides), ("text_config.", nested if isinstance(nested, dict) else {})):
        for k in rules.rope_keys:
            rope = d.get(k)
            if isinstance(rope, dict) and ("rope_type" in rope or "type" in rope) and "rope_theta" not in rope:
                raise InputError(
                    f"--hf-overrides {where}{k}: vLLM sets the object whole in place of the config's RoPE parameters "
                    "(vllm/config/model.py _apply_dict_overrides), so without rope_theta in it vLLM (0.30.0, 0.33.0) fails "
                    "building the rotary embedding (TypeError: unsupported operand type(s) for ** or pow(): "
                    "'NoneType' and 'Tensor'); add the model's rope_theta to the object")


def apply_hf_overrides(spec: ModelSpec, overrides: dict[str, Any]) -> ModelSpec:
    """The spec of the config with `overrides` applied as vLLM applies them (data/vllm.json hf_overrides)."""
    if not overrides:
        return spec
    if spec.config is None:
        raise NotModelledError(f"--hf-overrides: vramcalc applies it to the model's config.json, and {spec.id} was "
                               f"read without one ({spec.source.split(':')[0]}); remove the flag to check the rest")
    _refuse_keys(overrides)
    rules = vllm_rules().hf_overrides
    cfg = copy.deepcopy(spec.config)
    nested = isinstance(cfg.get("text_config"), dict)
    text: dict[str, Any] = cfg["text_config"] if nested else cfg
    # transformers derived layer_types from the checkpoint's own values in the config class's __init__; the
    # overrides are set after it and do not derive them again
    pinned = spec.model_type in rules.layer_types_from_init and "layer_types" not in text
    if pinned:
        text["layer_types"] = [_LAYER_TYPE[la.attention.kind] for la in spec.layers if la.attention is not None]
    from ..sources.hf_config import Fields, _architectures

    table = _architectures().text.get(spec.model_type)
    aliases = Fields(text, spec.model_type, spec.id).aliases if table else {}
    for k, v in overrides.items():
        if isinstance(v, dict) and k in rules.nested_configs and isinstance(cfg.get(k), dict):
            _merge(cfg[k], v)
            continue
        cfg[k] = v  # a flat value, or an object set whole (rope_parameters)
        if not nested:  # the config the language model reads (a multimodal one's outer keys are not)
            if k in rules.rope_keys:  # one attribute under transformers 5: both spellings replaced
                for r in rules.rope_keys:
                    cfg[r] = v
            elif aliases.get(k) in cfg:  # attribute_map: num_experts sets num_local_experts's attribute
                cfg[aliases[k]] = v
    if nested and isinstance(overrides.get("text_config"), dict):
        for r in rules.rope_keys:
            if r in overrides["text_config"]:
                for r2 in rules.rope_keys:
                    text[r2] = text[r]
    n, types = text.get("num_hidden_layers"), text.get("layer_types")
    if isinstance(n, int) and isinstance(types, list) and len(types) != n:
        if n < len(types):  # the model reads layer_types[i] for its first n layers
            text["layer_types"] = types[:n]
        elif len(set(map(str, types))) == 1:
            text["layer_types"] = types + types[:1] * (n - len(types))
        else:
            raise NotModelledError(
                f"--hf-overrides num_hidden_layers {n}: the config's layer_types lists {len(types)} layers of mixed "
                "kinds, which transformers derived before the override; vLLM's model reads layer_types[i] for each "
                "layer, and vramcalc does not model the layers past the list")
    from ..sources.hf_config import spec_from_config

    try:
        out = spec_from_config(cfg, model_id=spec.id, source=spec.source, where=f"{spec.id} with --hf-overrides")
    except ConfigError as e:
        raise InputError(f"--hf-overrides: {e}") from None
    notes = tuple(n for n in spec.notes if n not in out.notes)
    return out.model_copy(update={"notes": out.notes + notes, "config": spec.config}) if notes else \
        out.model_copy(update={"config": spec.config})
