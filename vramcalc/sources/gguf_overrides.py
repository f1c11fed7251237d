"""--override-kv KEY=TYPE:VALUE,... on a GGUF's metadata, as llama.cpp (4df29be) applies it before it reads the
hparams (data/gguf_kv_overrides.json says which keys, how llama.cpp reads each, and what an override of it does).

common/common.cpp string_parse_kv_override parses each item; src/llama-model-loader.cpp keeps the first item of a
key (std::map insert) and applies it where the reader's type matches (get_key even where the file lacks the key,
get_key_or_arr only over a scalar in the file). A key that sets tensor shapes stops the load at another value
than the file's; the keys that only size buffers (expert_used_count, context_length, sliding_window) are read
as overridden, and the ModelSpec is built again from the metadata so changed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..data_files import raw
from ..data_models import GGUFKVOverrides
from ..errors import InputError, NotModelledError
from ..messages import Message, warning

SOURCE = "src/llama-model-loader.cpp get_key / GGUFMeta::GKV::set (4df29be)"


@lru_cache(maxsize=None)
def table() -> dict[str, Any]:
    return raw("gguf_kv_overrides.json", GGUFKVOverrides)


@dataclass(frozen=True)
class KVOverride:
    item: str  # as written
    key: str
    tag: str  # int, float, bool, str
    value: int | float | bool | str


def _atol(s: str) -> int:
    """C's atol: leading blanks, a sign and digits; 0 where none."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", s)
    return int(m.group(1)) if m else 0


def _atof(s: str) -> float:
    m = re.match(r"[ \t\n\v\f\r]*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", s,
                 re.IGNORECASE)
    return float(m.group(1)) if m else 0.0


def parse_item(item: str) -> KVOverride:
    """common/common.cpp string_parse_kv_override; InputError with llama.cpp's words (common/arg.cpp --override-kv:
    the handler's throw) where it refuses the item."""
    key, eq, rest = item.partition("=")
    said = f'error while handling argument "--override-kv": error: Invalid type for KV override: {item}'
    if not eq or len(key) >= 128:
        raise InputError(said)
    value: int | float | bool | str
    if rest.startswith("int:"):
        tag, value = "int", _atol(rest[4:])
    elif rest.startswith("float:"):
        tag, value = "float", _atof(rest[6:])
    elif rest.startswith("bool:") and rest[5:] in ("true", "false"):
        tag, value = "bool", rest[5:] == "true"
    elif rest.startswith("str:") and len(rest) - 4 <= 127:
        tag, value = "str", rest[4:]
    else:
        raise InputError(said)
    return KVOverride(item=item, key=key, tag=tag, value=value)


def parse(items: tuple[str, ...] | list[str]) -> list[KVOverride]:
    """Every item (each a KEY=TYPE:VALUE, or a comma list of them), the first of each key kept."""
    out: dict[str, KVOverride] = {}
    for v in items:
        for item in v.split(","):  # common/arg.cpp parse_csv_row
            if item.strip():
                o = parse_item(item.strip())
                out.setdefault(o.key, o)  # std::map::insert keeps the first
    return list(out.values())


def classify(key: str) -> str:
    """What the key's override can do, from its name alone: no_effect, modelled (an {arch}.KEY vramcalc reads),
    or not_modelled."""
    t = table()
    if key in t["no_effect"]:
        return "no_effect"
    arch, dot, rel = key.partition(".")
    if dot and arch not in ("general", "tokenizer") and rel in t["keys"]:
        return "no_effect" if t["keys"][rel]["effect"] == "none" else "modelled"
    return "not_modelled"


def apply(source: Any, items: tuple[str, ...]) -> tuple[Any, list[Message]]:
    """The ModelSource with the overrides applied as llama.cpp applies them, and what was said about each: a warning
    for an override llama.cpp does not apply (another architecture's key, a type the reader does not take, a
    per-layer array in the file); InputError where llama.cpp stops (a tensor shape changed, a failed assert)."""
    from .gguf_header import GGUFHeader
    from .gguf_spec import spec_from_gguf

    overrides = parse(items)
    if not overrides:
        return source, []
    h: GGUFHeader | None = getattr(source, "gguf_header", None)
    if h is None:
        raise NotModelledError("--override-kv: the model's GGUF header is not read here (its file type is predicted), "
                               "so the metadata it overrides is not known; give the .gguf file")
    md = dict(h.metadata)
    arch = md.get("general.architecture")
    t = table()
    notes: list[Message] = []
    changed: list[tuple[KVOverride, dict[str, Any], Any]] = []
    for o in overrides:
        kind = classify(o.key)
        if kind == "no_effect":
            continue
        if kind == "not_modelled":  # the command reader warns about these and keeps them out
            raise NotModelledError(f"--override-kv {o.item}: an override of GGUF metadata vramcalc does not read "
                                   "(data/gguf_kv_overrides.json lists those it does); remove it to check the rest")
        prefix, _, rel = o.key.partition(".")
        entry = t["keys"][rel]
        if prefix != arch:
            notes.append(warning("llamacpp.kv_override.unread", f"--override-kv {o.item}: the model is {arch}, so "
                                 f"llama.cpp never reads {o.key} (it reads {arch}.{rel}); no effect", source=SOURCE))
            continue
        if entry.get("archs") and arch not in entry["archs"]:
            raise NotModelledError(f"--override-kv {o.item}: how {arch} reads {rel} is not modelled (it is for "
                                   f"{', '.join(entry['archs'])}); remove it to check the rest")
        if o.tag != entry["type"]:
            notes.append(warning("llamacpp.kv_override.bad_type", f"--override-kv {o.item}: llama.cpp logs "
                                 f"\"Warning: Bad metadata override type for key '{o.key}', expected {entry['type']} "
                                 f"but got {o.tag}\" and keeps the file's value; no effect", source=SOURCE))
            continue
        present = md.get(o.key)
        if entry["read"] == "get_key_or_arr" and (present is None or isinstance(present, (list, dict))):
            notes.append(warning("llamacpp.kv_override.unread", f"--override-kv {o.item}: the file holds "
                                 f"{'no ' + o.key if present is None else o.key + ' per layer (an array)'}, and "
                                 "llama.cpp's get_key_or_arr applies an override only over a scalar in the file; "
                                 "no effect", source=SOURCE))
            continue
        value = int(o.value) % 2**32  # the integer hparams are uint32_t: target = val_i64
        changed.append((o, entry, value))
    if not changed:
        return source, notes
    for o, entry, v in changed:
        rel = o.key.partition(".")[2]
        if rel == "expert_used_count":
            n_expert = md.get(f"{arch}.expert_count") or 0
            if not 0 < v <= n_expert:
                said = "hparams.n_expert_used <= hparams.n_expert" if v > n_expert else "hparams.n_expert_used > 0"
                raise InputError(f"llama.cpp aborts loading the model: --override-kv {o.item}: GGML_ASSERT({said}) "
                                 f"failed ({arch}.expert_count is {n_expert}) [src/llama-model.cpp load_hparams]")
        elif entry["effect"] == "shape" and md.get(o.key) is not None and md[o.key] != v:
            raise _shape_refusal(o, v, md[o.key])
        elif entry["effect"] == "applies" and v == 0:
            raise NotModelledError(f"--override-kv {o.item}: {o.key} 0 is not modelled (remove it to check the rest)")
    before = source.spec
    new_md = {**md, **{o.key: v for o, _, v in changed}}
    spec = spec_from_gguf(h.model_copy(update={"metadata": new_md}), model_id=before.id, source=before.source,
                          where=f"{before.source.removeprefix('gguf:')} with --override-kv")
    for o, entry, v in changed:  # a key the file lacks: its default's shapes against the override's
        if entry["effect"] == "shape" and md.get(o.key) is None and _shapes(spec) != _shapes(before):
            raise _shape_refusal(o, v, None)
    applied = ", ".join(f"{o.key} {md.get(o.key, 'absent')} -> {v}" for o, e, v in changed
                        if e["effect"] == "applies")
    if applied:
        notes.append(warning("llamacpp.kv_override.applied", f"--override-kv: llama.cpp reads the overridden "
                             f"metadata ({applied}); the figures follow it", source=SOURCE))
        spec = spec.model_copy(update={"notes": spec.notes + (f"GGUF metadata overridden (--override-kv): {applied}",)})
    return source.model_copy(update={"spec": spec}), notes


def _shape_refusal(o: KVOverride, v: int, old: Any) -> InputError:
    was = "absent" if old is None else f"{old}"
    return InputError(f"llama.cpp fails to load the model: --override-kv {o.item} sets {o.key} to {v} (the file: "
                      f"{was}), which changes the tensors it expects from those the file holds "
                      "(src/llama-model-loader.cpp create_tensor check_tensor_dims: \"tensor ... has wrong shape\", "
                      "done_getting_tensors: \"wrong number of tensors\"); drop the override")


def _shapes(spec: Any) -> Any:
    """What sets the tensors' shapes in a ModelSpec: every field but the buffer-only hparams."""
    layers = []
    for layer in spec.layers:
        d = layer.model_dump()
        if d.get("attention"):
            d["attention"].pop("window", None)
            d["attention"].pop("kind", None)
        if d.get("mlp"):
            d["mlp"].pop("experts_per_token", None)
        layers.append(d)
    return layers
