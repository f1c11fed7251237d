"""Hugging Face config.json -> ModelSpec.

One reader per family. Field semantics follow the transformers config and modeling classes named
in each reader (transformers 5.23); absent fields take that class's default, recorded in
data/architectures.json, except the fields listed there as required, which are refused.
"""

from __future__ import annotations

import builtins
import math
from pathlib import Path
from typing import Any, Callable, TypedDict

from . import bounded_json
from ..data_files import load
from ..data_models import Architectures, GenericFallback
from ..errors import ConfigError, NotModelledError
from ..quant import check_quant_config
from ..spec import (
    AttentionSpec,
    LayerSpec,
    MLASpec,
    MLPSpec,
    ModelSpec,
    SSMSpec,
    TensorSpec,
)
from .validate import (MAX_CONTEXT, MAX_CONV, MAX_EXPERTS, MAX_HEAD_DIM, MAX_HEADS, MAX_HIDDEN, MAX_LAYERS,
                       MAX_STATE, MAX_VOCAB, built)
from .vision import FLAT_COMPOSITES, read_vision

_MISSING = object()


class _ReaderLayers(TypedDict):
    layers: list[LayerSpec]


class ReaderParts(_ReaderLayers, total=False):
    """What a family's reader gives spec_from_config: the layers, and what else the family has."""

    norm_bias: bool
    mtp_layers: int  # multi-token-prediction layers (not instantiated by transformers)
    notes: list[str]
    approximate: bool
    extra_tensors: list[TensorSpec]  # tensors outside the layer stack (zamba2's shared blocks)
    rope_scaling: dict[str, Any]  # the rope config where the family keeps it outside rope_scaling (MiniMax-M3)
    max_position_embeddings: int  # the family's default where the config has none and no table gives it
    tie_word_embeddings: bool  # where the engine's class ties (or not) whatever the config's flag says (LFM2)


# Bounds checked before anything is sized from a config (validate.py gives each bound's reason):
# no real model comes near them, and a hostile or corrupt value must not make vramcalc build a
# billion-layer list or size a negative cache.
LIMITS: dict[str, int] = {
    "num_hidden_layers": MAX_LAYERS, "hidden_size": MAX_HIDDEN, "vocab_size": MAX_VOCAB,
    "max_position_embeddings": MAX_CONTEXT, "attention_chunk_size": MAX_CONTEXT,
    **dict.fromkeys(("num_attention_heads", "num_key_value_heads", "num_global_key_value_heads", "num_heads",
                     "linear_num_key_heads", "linear_num_value_heads", "mamba_num_heads", "n_mamba_heads",
                     "index_n_heads", "n_groups", "mamba_ngroups"), MAX_HEADS),
    **dict.fromkeys(("head_dim", "global_head_dim", "attention_head_dim", "qk_nope_head_dim", "qk_rope_head_dim",
                     "v_head_dim", "index_head_dim", "linear_key_head_dim", "linear_value_head_dim"), MAX_HEAD_DIM),
    **dict.fromkeys(("num_experts", "num_local_experts", "n_routed_experts", "num_experts_per_tok",
                     "experts_per_token", "top_k_experts", "n_shared_experts"), MAX_EXPERTS),
    **dict.fromkeys(("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_kv_shared_layers", "first_k_dense_replace",
                     "num_mem_blocks"), MAX_LAYERS),
    **dict.fromkeys(("mamba_d_state", "state_size"), MAX_STATE),
    **dict.fromkeys(("mamba_d_conv", "conv_kernel", "conv_dimension", "linear_conv_kernel_dim"), MAX_CONV),
}
# Any other integer field (widths, ranks, layer indices and periods): MAX_CONTEXT bounds them all.
MAX_DIM = MAX_CONTEXT


def _architectures() -> Architectures:
    return load("architectures.json", Architectures)


class Fields:
    """A config dict read the way transformers reads it: class defaults for absent keys."""

    def __init__(self, cfg: dict[str, Any], model_type: str, where: str):
        self.cfg = cfg
        self.where = where
        table = _architectures().text.get(model_type)
        self.defaults: dict[str, Any] = table.defaults if table else {}
        self.required: set[str] = set(table.required) if table else set()
        # attribute_map: a key may be written under its alias (num_experts / num_local_experts)
        self.aliases: dict[str, str] = {}
        for a, b in (table.aliases if table else {}).items():
            self.aliases[a], self.aliases[b] = b, a

    def has(self, key: str) -> bool:
        return key in self.cfg or self.aliases.get(key) in self.cfg

    def __call__(self, key: str, default: Any = _MISSING) -> Any:
        """The config's value (under its name or alias); else the class default; else `default`."""
        if key in self.cfg:
            return self.cfg[key]
        if self.aliases.get(key) in self.cfg:
            return self.cfg[self.aliases[key]]
        if key in self.required or self.aliases.get(key) in self.required:
            raise ConfigError(self.where, key)
        if key in self.defaults:
            return self.defaults[key]
        if self.aliases.get(key) in self.defaults:
            return self.defaults[self.aliases[key]]
        if default is not _MISSING:
            return default
        raise ConfigError(self.where, key)

    def window(self) -> builtins.int | None:
        """sliding_window, never from a class default (MistralConfig's is 4096): a truncated copy
        must not shrink the KV cache. Absent means full attention."""
        value = self.cfg.get("sliding_window")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(self.where, "sliding_window", f"must be a positive integer or null, got {value!r:.40}")
        if value > MAX_CONTEXT:
            raise ConfigError(self.where, "sliding_window", f"is {value:,}, beyond any real model (limit {MAX_CONTEXT:,})")
        return value

    def int(self, key: str, default: Any = _MISSING) -> builtins.int:
        value = self(key, default)
        if isinstance(value, bool) or not isinstance(value, builtins.int) or value < 0:
            raise ConfigError(self.where, key, f"must be a non-negative integer, got {value!r:.40}")
        limit = LIMITS.get(key, LIMITS.get(self.aliases.get(key, ""), MAX_DIM))
        if value > limit:
            raise ConfigError(self.where, key, f"is {value:,}, beyond any real model (limit {limit:,})")
        return value

    def pos(self, key: str, default: Any = _MISSING) -> builtins.int:
        value = self.int(key, default)
        if value == 0:
            raise ConfigError(self.where, key, "must be positive, got 0")
        return value

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        return bool(self(key, default))

    def opt_int(self, key: str, default: Any = None) -> builtins.int | None:
        value = self(key, default)
        return None if value is None else self.int(key, default)

    def opt_pos(self, key: str) -> builtins.int | None:
        """A positive integer, or None where the field is absent, null or 0 (a config's "unset")."""
        value = self(key, None)
        return None if value is None or value == 0 and not isinstance(value, bool) else self.pos(key)

    def int_list(self, key: str, default: Any = _MISSING) -> list[builtins.int] | None:
        value = self(key, default)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, builtins.int) and not isinstance(v, bool) for v in value):
            raise ConfigError(self.where, key, "must be a list of integers")
        if len(value) > MAX_LAYERS:
            raise ConfigError(self.where, key, f"lists {len(value):,} values, beyond any real model (limit {MAX_LAYERS:,})")
        return value

    def str_list(self, key: str, n: builtins.int) -> list[str] | None:
        value = self(key, None)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.where, key, f"must list {n} layer types")
        return value

    def layer_types(self, n: builtins.int, fallback: Callable[[builtins.int], str]) -> list[str]:
        """`layer_types` from the config, else the family's rule (never the class default list,
        which is computed for the default layer count)."""
        types = self.cfg.get("layer_types")
        if types is None:
            return [fallback(i) for i in range(n)]
        if not isinstance(types, list) or len(types) != n:
            raise ConfigError(self.where, "layer_types", f"must list {n} layers")
        return [str(t) for t in types]


def _head_dim(f: Fields, hidden: int, heads: int) -> int:
    head_dim = f("head_dim", None)
    if head_dim is None:  # transformers: hidden_size // num_attention_heads when head_dim is unset
        if hidden % heads:
            raise ConfigError(f.where, "head_dim", "is missing and hidden_size is not divisible by heads")
        return hidden // heads
    return f.pos("head_dim")


def _attn(f: Fields, kind: Any, window: int | None = None, **kw: Any) -> AttentionSpec:
    hidden = f.pos("hidden_size")
    heads = f.pos("num_attention_heads")
    kv_heads = f("num_key_value_heads", None)
    kv_heads = heads if kv_heads is None else f.pos("num_key_value_heads")
    hd = kw.pop("head_dim", None) or _head_dim(f, hidden, heads)
    if kind == "sliding" and not window:
        raise ConfigError(f.where, "sliding_window", "must be set for sliding-window layers")
    return AttentionSpec(
        kind=kind,
        num_heads=kw.pop("num_heads", heads),
        num_kv_heads=kw.pop("num_kv_heads", kv_heads),
        head_dim_k=hd,
        head_dim_v=hd,
        window=window if kind in ("sliding", "chunked") else None,
        **kw,
    )


def _dense(f: Fields, key: str = "intermediate_size", **kw: Any) -> MLPSpec:
    return MLPSpec(kind="dense", intermediate_size=f.pos(key), **kw)


def _swa_kind(t: str) -> str:
    if t in ("full_attention", "attention", "global"):
        return "full"
    if t in ("sliding_attention", "sliding", "local"):
        return "sliding"
    if t == "chunked_attention":
        return "chunked"
    raise NotModelledError(f"layer type {t!r} is not modelled (known: full_attention, sliding_attention, "
                           "chunked_attention)")


# ---------------------------------------------------------------- dense decoders


def _read_llama_like(f: Fields, mt: str) -> ReaderParts:
    """llama, mistral, qwen2, qwen3, phi3, cohere, gemma2, gemma3_text (and unknown decoders)."""
    n = f.pos("num_hidden_layers")
    window = f.window()
    if mt in ("gemma2",):  # Gemma2Config: even layers sliding, odd layers global
        types = f.layer_types(n, lambda i: "sliding_attention" if (i + 1) % 2 else "full_attention")
    elif mt == "gemma3_text":  # Gemma3TextConfig: every sliding_window_pattern-th layer global
        pattern = f.pos("sliding_window_pattern", f.defaults.get("_sliding_window_pattern", 6))
        types = f.layer_types(n, lambda i: "full_attention" if (i + 1) % pattern == 0 else "sliding_attention")
    elif mt in ("qwen2", "qwen3"):  # Qwen2Config: SWA only with use_sliding_window, from max_window_layers
        use_swa = f.flag("use_sliding_window", False)
        mwl = f.int("max_window_layers", n)
        types = f.layer_types(
            n, lambda i: "sliding_attention" if use_swa and window and i >= mwl else "full_attention"
        )
    else:  # Mistral/Phi-3 semantics: a sliding_window applies to every layer
        types = f.layer_types(n, lambda i: "sliding_attention" if window else "full_attention")

    bias = f.flag("attention_bias", False)
    qkv_bias = True if mt == "qwen2" else bias  # Qwen2Attention: q/k/v always biased, o never
    o_bias = False if mt in ("qwen2", "qwen3") else bias
    if mt == "cohere":
        qkv_bias = o_bias = bias
    qk_norm = mt in ("qwen3", "gemma3_text") or (mt == "cohere" and f.flag("use_qk_norm", False))
    # Gemma 2/3 sandwich norms: input, post_attention, pre_feedforward, post_feedforward.
    norms = {"gemma2": 4, "gemma3_text": 4, "cohere": 1}.get(mt, 2)
    layers = []
    for t in types:
        kind = _swa_kind(t)
        attn = _attn(f, kind, window, qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm)
        layers.append(LayerSpec(attention=attn, mlp=_dense(f, bias=f.flag("mlp_bias", False)), norms=norms))
    return {"layers": layers, "norm_bias": False}


def _read_generic(f: Fields, mt: str) -> ReaderParts:
    """An unknown model_type with the standard decoder fields and none that generic_fallback_refusal refuses: a
    Llama-style GQA decoder read as an upper bound of the Llama-like families vLLM registers (data/generic_fallback.json
    kept_reading): every layer full attention (a sliding_window is not applied: where it applies is the family's
    rule, e.g. vLLM v0.34.0 models/exaone4.py slides three layers in four), q/k norms over all heads (qk_norm_full),
    four norms per layer (Gemma-style sandwich norms) and a bias on every projection."""
    n = f.pos("num_hidden_layers")
    attn = _attn(f, "full", qkv_bias=True, o_bias=True, qk_norm=True, qk_norm_full=True)
    layer = LayerSpec(attention=attn, mlp=_dense(f, bias=True), norms=4)
    notes = [f"model_type {mt!r} is not known to vramcalc: read as a generic decoder, an upper bound (every layer "
             "full attention, every optional norm and bias counted)"]
    if f.window():
        notes.append(f"sliding_window {f.window():,} not applied (model_type {mt!r}): its layers are counted as full "
                     "attention, an upper bound on the KV cache")
    return {"layers": [layer] * n, "norm_bias": False, "notes": notes, "approximate": True}


def _generic_fallback() -> GenericFallback:
    return load("generic_fallback.json", GenericFallback)


def _set(value: Any) -> bool:
    """A config value that says something: not null, zero, false or empty."""
    return value not in (None, 0, False, "", [], {})  # 0.0 == 0 and False == 0: one test covers them


def generic_fallback_refusal(text: dict[str, Any]) -> dict[str, list[str]]:
    """What an unknown model_type's config carries that the generic (Llama-style) reading would ignore
    (data/generic_fallback.json, from the survey of vLLM v0.34.0's model classes), by kind (experts, attention,
    state, layers): the fields of each. Empty: the generic reading is kept, as an upper bound."""
    data = _generic_fallback().hf_config
    found: dict[str, list[str]] = {}
    for k, field in data.fields.items():
        if k in text and _set(text[k]):
            found.setdefault(field.kind, []).append(k)
    types = text.get("layer_types")
    if isinstance(types, list):
        other = sorted({str(t) for t in types} - set(data.layer_kinds))
        if other:
            found.setdefault("state", []).append(f"layer_types {'/'.join(other)}")
    n = text.get("num_hidden_layers")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        named = {k for ks in found.values() for k in ks}
        lists = [k for k, v in text.items() if k not in named and k != "layer_types" and "token_id" not in k
                 and isinstance(v, list)
                 and len(v) >= n and all(isinstance(x, (int, float)) for x in v)]
        if lists:
            found.setdefault("layers", []).extend(lists)
    return found


def _generic_refusal_text(where: str, mt: str, found: dict[str, list[str]]) -> str:
    kinds = _generic_fallback().kinds
    what = "; ".join(f"{kinds[k].label} ({', '.join(v)})" for k, v in found.items())  # type: ignore[index]
    hint = (" A GGUF file of the model may answer instead (its weights are read from the file's tensors)."
            if all(kinds[k].gguf_may_answer for k in found) else "")  # type: ignore[index]
    return (f"{where}: model_type {mt!r} is not modelled: vramcalc has no reader for it, and its config has {what}, "
            f"which a Llama-style reading would ignore (too few weights or too small a KV cache).{hint}")


def _read_minimax_m2(f: Fields, mt: str) -> ReaderParts:
    """MiniMaxM2Config: every layer full attention with q/k RMSNorms over all heads (qk_norm_type
    per_layer) and a MoE of num_local_experts experts of intermediate_size, sigmoid router with a
    score-correction bias (use_routing_bias); partial RoPE (rotary_dim) changes no weight."""
    n = f.pos("num_hidden_layers")
    norm = f.flag("use_qk_norm", True)
    if norm and f("qk_norm_type", "per_layer") != "per_layer":
        raise ConfigError(f.where, "qk_norm_type", f"is {f('qk_norm_type')!r}; only per_layer is modelled")
    moe = MLPSpec(kind="moe", num_experts=f.pos("num_local_experts"), experts_per_token=f.pos("num_experts_per_tok"),
                  expert_intermediate_size=f.pos("intermediate_size"),
                  shared_intermediate_size=f.int("shared_intermediate_size", 0),
                  router_score_bias=f.flag("use_routing_bias", False))
    if moe.shared_intermediate_size:
        raise ConfigError(f.where, "shared_intermediate_size", "a shared expert is not modelled for minimax_m2")
    layers = [LayerSpec(attention=_attn(f, "full", qk_norm=norm, qk_norm_full=norm), mlp=moe) for _ in range(n)]
    return {"layers": layers}


def _read_minimax_m3(f: Fields, mt: str) -> ReaderParts:
    """MiniMax-M3's text model as vLLM v0.34.0 builds it (vllm/models/minimax_m3/nvidia/model.py; the field
    semantics of transformers 5.24 MiniMaxM3VLTextConfig.__post_init__, which maps the checkpoint's
    sparse_attention_config and moe_layer_freq to layer_types and mlp_layer_types). Per layer
    (MiniMaxM3DecoderLayer): sparse_attention_freq 1 is a MiniMaxM3SparseAttention (full GQA attention plus the
    lightning indexer: index_q of index_n_heads x index_head_dim and one index_k head in the fused qkv_proj, two
    index norms, a key-only side cache), 0 a plain MiniMaxM3Attention; per-head Gemma q/k norms; moe_layer_freq 1 is
    MiniMaxM3MoE (sigmoid router with e_score_correction_bias, num_local_experts experts of intermediate_size and one
    shared expert MiniMaxM3MLP sized by intermediate_size), 0 a dense MLP of dense_intermediate_size. Partial RoPE
    (rotary_dim) changes no weight, only the cos/sin cache. The MTP modules (num_mtp_modules) are a separate
    checkpoint class (MiniMaxM3MTP), not loaded by default."""
    n = f.pos("num_hidden_layers")
    sparse = f("sparse_attention_config", None) or {}
    if not isinstance(sparse, dict):
        raise ConfigError(f.where, "sparse_attention_config", "must be a JSON object")
    types = f.cfg.get("layer_types")
    if types is not None:
        types = f.layer_types(n, lambda i: "full_attention")
    elif "sparse_attention_freq" in sparse:
        freq = sparse["sparse_attention_freq"]
        if not isinstance(freq, list) or len(freq) != n:
            raise ConfigError(f.where, "sparse_attention_config.sparse_attention_freq", f"must list {n} layers")
        types = ["minimax_m3_sparse" if v else "full_attention" for v in freq]
    else:  # MiniMaxM3VLTextConfig: every layer full attention
        types = ["full_attention"] * n
    bad = sorted({t for t in types if t not in ("full_attention", "minimax_m3_sparse")})
    if bad:
        raise NotModelledError(f"{f.where}: layer type {bad[0]!r} is not modelled for minimax_m3 (known: "
                               "full_attention, minimax_m3_sparse)")
    mlp_types = f.cfg.get("mlp_layer_types")
    if mlp_types is None and f.cfg.get("moe_layer_freq") is not None:
        freq = f.int_list("moe_layer_freq")
        if freq is None or len(freq) != n:
            raise ConfigError(f.where, "moe_layer_freq", f"must list {n} layers")
        mlp_types = ["sparse" if v else "dense" for v in freq]
    elif mlp_types is None:  # MiniMaxM3VLTextConfig: every layer a MoE block
        mlp_types = ["sparse"] * n
    elif not isinstance(mlp_types, list) or len(mlp_types) != n or not set(mlp_types) <= {"sparse", "dense"}:
        raise ConfigError(f.where, "mlp_layer_types", f"must list {n} layers, each sparse or dense")
    if sparse.get("sparse_disable_index_value") is not None and any(
            not v for v, t in zip(sparse["sparse_disable_index_value"], types) if t == "minimax_m3_sparse"):
        # vLLM v0.34.0 MiniMaxM3SparseAttention never creates index_v_proj / index_o_proj
        raise NotModelledError(f"{f.where}: a sparse layer with sparse_disable_index_value 0 (an index value / output "
                               "branch) is not modelled: vLLM v0.34.0 builds none")
    # the flat fields of MiniMaxM3VLTextConfig, else the legacy sparse_attention_config keys it maps to them
    idx_heads = sparse.get("sparse_num_index_heads", f("index_n_heads", 4))
    idx_dim = sparse.get("sparse_index_dim", f("index_head_dim", 128))
    for key, v in (("sparse_num_index_heads", idx_heads), ("sparse_index_dim", idx_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_HEAD_DIM:
            raise ConfigError(f.where, f"sparse_attention_config.{key}", f"must be a positive integer, got {v!r:.40}")
    kv_heads = f.pos("num_key_value_heads")
    if idx_heads != kv_heads:  # MiniMaxM3SparseAttention shards index_q as the KV heads (num_idx_heads = KV heads)
        raise NotModelledError(f"{f.where}: sparse_num_index_heads {idx_heads} != num_key_value_heads {kv_heads}: "
                               "vLLM v0.34.0 gives the indexer as many query heads per rank as KV heads; not modelled")
    if f("qk_norm_type", "per_head") != "per_head" or not f.flag("use_qk_norm", True):
        raise NotModelledError(f"{f.where}: qk_norm_type {f('qk_norm_type', 'per_head')!r} / use_qk_norm: vLLM v0.34.0 "
                               "MiniMaxM3Attention always builds per-head q/k norms; only per_head is modelled")
    if f.flag("attention_output_gate", False):
        raise NotModelledError(f"{f.where}: attention_output_gate true is not modelled for minimax_m3")
    moe = MLPSpec(kind="moe", num_experts=f.pos("num_local_experts"), experts_per_token=f.pos("num_experts_per_tok"),
                  expert_intermediate_size=f.pos("intermediate_size"),
                  shared_intermediate_size=f.pos("intermediate_size"), router_score_bias=True)
    dense = MLPSpec(kind="dense", intermediate_size=f.pos("dense_intermediate_size"))
    layers = []
    for t, m in zip(types, mlp_types):
        kw = {"index_n_heads": idx_heads, "index_head_dim": idx_dim} if t == "minimax_m3_sparse" else {}
        attn = _attn(f, "full", qk_norm=True, **kw)
        layers.append(LayerSpec(attention=attn, mlp=moe if m == "sparse" else dense))
    if f.int("n_shared_experts", 1) != 1:
        raise NotModelledError(f"{f.where}: n_shared_experts {f('n_shared_experts')!r}: vLLM v0.34.0 MiniMaxM3MoE "
                               "builds one shared expert; not modelled")
    # the cos/sin cache: rotary_dim of head_dim rotated (vLLM get_rope on rope_parameters' partial_rotary_factor)
    rotary = f.pos("rotary_dim", f.pos("head_dim"))
    rope = {"rope_type": "default", "partial_rotary_factor": rotary / f.pos("head_dim")}
    return {"layers": layers, "rope_scaling": rope}


def _read_qwen3_vl_text(f: Fields, mt: str) -> ReaderParts:
    """Qwen3VLTextConfig: Qwen3's decoder (q/k norms, no biases, no sliding window); M-RoPE
    changes no weight."""
    return _read_llama_like(f, "qwen3")


# ---------------------------------------------------------------- mixture of experts


def _read_mixtral(f: Fields, mt: str) -> ReaderParts:
    n = f.pos("num_hidden_layers")
    window = f.window()
    moe = MLPSpec(
        kind="moe",
        num_experts=f.pos("num_local_experts"),
        experts_per_token=f.pos("num_experts_per_tok"),
        expert_intermediate_size=f.pos("intermediate_size"),
    )
    kind = "sliding" if window else "full"
    return {"layers": [LayerSpec(attention=_attn(f, kind, window), mlp=moe) for _ in range(n)]}


def _qwen_moe_mlp(f: Fields, i: int, shared: bool) -> MLPSpec:
    """Qwen3MoeDecoderLayer / Qwen3NextDecoderLayer: experts unless mlp_only_layers or step."""
    sparse_step = f.int("decoder_sparse_step", 1)
    mlp_only = f.int_list("mlp_only_layers", []) or []
    n_exp = f.int("num_experts")
    if i not in mlp_only and n_exp > 0 and sparse_step > 0 and (i + 1) % sparse_step == 0:
        shared_size = f.int("shared_expert_intermediate_size", 0) if shared else 0
        return MLPSpec(
            kind="moe",
            num_experts=n_exp,
            experts_per_token=f.pos("num_experts_per_tok"),
            expert_intermediate_size=f.pos("moe_intermediate_size"),
            shared_intermediate_size=shared_size,
            shared_expert_gate=shared_size > 0,
        )
    return _dense(f)


def _read_qwen3_moe(f: Fields, mt: str) -> ReaderParts:
    n = f.pos("num_hidden_layers")
    layers = [
        LayerSpec(attention=_attn(f, "full", qk_norm=True, qkv_bias=f.flag("attention_bias", False)),
                  mlp=_qwen_moe_mlp(f, i, shared=False))
        for i in range(n)
    ]
    return {"layers": layers}


def _read_olmoe(f: Fields, mt: str) -> ReaderParts:
    """OlmoeConfig as vLLM v0.34.0 builds it: its Transformers backend over transformers 5.24
    modeling_olmoe.OlmoeForCausalLM (vllm/model_executor/models/registry.py _TRANSFORMERS_SUPPORTED_MODELS). Every
    layer full attention (q/k/v/o biased by attention_bias) with q/k RMSNorms over the whole projection (OlmoeAttention:
    q_norm of hidden_size, k_norm of hidden_size / heads x KV heads), then OlmoeSparseMoeBlock: a bias-free router
    and num_experts experts of intermediate_size, no shared expert; clip_qkv changes no weight."""
    n = f.pos("num_hidden_layers")
    hidden, heads = f.pos("hidden_size"), f.pos("num_attention_heads")
    if _head_dim(f, hidden, heads) * heads != hidden:
        raise NotModelledError(f"{f.where}: head_dim {f('head_dim')} x {heads} heads != hidden_size {hidden}: "
                               "transformers 5.24 OlmoeAttention sizes its q/k norms by hidden_size; not modelled")
    bias = f.flag("attention_bias", False)
    moe = MLPSpec(kind="moe", num_experts=f.pos("num_experts"), experts_per_token=f.pos("num_experts_per_tok"),
                  expert_intermediate_size=f.pos("intermediate_size"))
    attn = _attn(f, "full", qkv_bias=bias, o_bias=bias, qk_norm=True, qk_norm_full=True)
    return {"layers": [LayerSpec(attention=attn, mlp=moe) for _ in range(n)]}


def _read_ernie45_moe(f: Fields, mt: str) -> ReaderParts:
    """Ernie4_5_MoeConfig as vLLM v0.34.0 builds it (vllm/model_executor/models/ernie45_moe.py
    Ernie4_5_MoeDecoderLayer): layer i is a MoE layer when use_moe (default: moe_num_experts > 0),
    (i + 1) % moe_layer_interval == 0 and moe_layer_start_index <= i <= moe_layer_end_index (-1: the last layer, as
    transformers 5.24 Ernie4_5_MoeConfig.__post_init__ sets it), a dense MLP of intermediate_size otherwise;
    Ernie4_5_MoeMoE: moe_num_experts experts of moe_intermediate_size, moe_num_shared_experts shared experts in one MLP
    of moe_intermediate_size x their count, a float32 router with a float32 e_score_correction_bias. use_bias biases
    q/k/v and the dense MLP (never o_proj, the experts or lm_head, which transformers 5.24 Ernie4_5_MoeAttention and
    Ernie4_5_MoeForCausalLM do bias)."""
    n = f.pos("num_hidden_layers")
    bias = f.flag("use_bias", False)
    n_exp = f.int("moe_num_experts")
    use_moe = f.flag("use_moe", n_exp > 0)
    start = f.int("moe_layer_start_index", 1)
    end = n - 1 if f.cfg.get("moe_layer_end_index", -1) in (-1, None) else f.int("moe_layer_end_index")
    interval = f.pos("moe_layer_interval", 1)
    layers = []
    attn = _attn(f, "full", qkv_bias=bias)
    for i in range(n):
        if use_moe and (i + 1) % interval == 0 and start <= i <= end:
            mlp = MLPSpec(kind="moe", num_experts=n_exp, experts_per_token=f.pos("moe_k"),
                          expert_intermediate_size=f.pos("moe_intermediate_size"),
                          shared_intermediate_size=f.int("moe_num_shared_experts", 0) * f.pos("moe_intermediate_size"),
                          router_score_bias=True, router_score_bias_param=True)
        else:
            mlp = _dense(f, bias=bias)
        layers.append(LayerSpec(attention=attn, mlp=mlp))
    return {"layers": layers}


def _read_hunyuan_moe(f: Fields, mt: str) -> ReaderParts:
    """HunYuanMoEV1Config as vLLM v0.34.0 builds it: its Transformers backend over transformers 5.24
    modeling_hunyuan_v1_moe.HunYuanMoEV1ForCausalLM (vllm/model_executor/models/registry.py
    _TRANSFORMERS_SUPPORTED_MODELS). Every layer full attention (q/k/v/o biased by attention_bias) with per-head
    query_layernorm / key_layernorm; HunYuanMoEV1Moe: a router of num_experts, one shared MLP of intermediate_size
    and num_experts routed experts, which the backend's FusedMoE sizes by moe_intermediate_size (else
    intermediate_size), one per layer where it is a list, with moe_topk (likewise) routed per token
    (vllm/model_executor/models/transformers/moe.py MoEMixin.recursive_replace, getattr_iter over
    CONFIG_FIELD_ALIASES, maybe_per_layer). transformers 5.24 reads none of the Hub file's num_shared_expert,
    use_mixed_mlp_moe, use_qk_norm, use_cla or cla_share_factor: vLLM builds the model they do not change (noted
    where they would say otherwise)."""
    n = f.pos("num_hidden_layers")
    if isinstance(f("num_experts"), list):  # HunYuanMoEV1Experts sizes itself by config.num_local_experts, an integer
        raise NotModelledError(f"{f.where}: num_experts as a per-layer list is not modelled for hunyuan_v1_moe "
                               "(transformers 5.24 HunYuanMoEV1Experts takes one count for every layer)")
    n_exp = f.pos("num_experts")

    def per_layer(key: str, default: Any) -> list[int]:
        value = f(key, default)
        values = f.int_list(key) if isinstance(value, list) else [f.pos(key, default)] * n
        if values is None or len(values) != n or min(values) <= 0:
            raise ConfigError(f.where, key, f"must be a positive integer or a list of {n} of them")
        return values

    tops = per_layer("moe_topk", 1)
    if max(tops) > n_exp:
        raise ConfigError(f.where, "moe_topk", f"routes {max(tops)} experts of {n_exp}")
    width = f.pos("intermediate_size")
    widths = per_layer("moe_intermediate_size", width)
    notes = []
    if set(widths) != {width}:
        notes.append(f"moe_intermediate_size {f('moe_intermediate_size')!r:.60} differs from intermediate_size "
                     f"{width:,}: vLLM v0.34.0 sizes the routed experts by it, transformers 5.24 (HunYuanMoEV1Experts) "
                     "by intermediate_size; vramcalc follows vLLM")
    shared = f("num_shared_expert", None)
    if shared is not None and set(shared if isinstance(shared, list) else [shared]) != {1}:
        notes.append(f"num_shared_expert {shared!r:.60} is not read: vLLM v0.34.0 (transformers 5.24 HunYuanMoEV1Moe) "
                     "builds one shared MLP of intermediate_size in every layer")
    if f.cfg.get("use_cla"):
        notes.append(f"use_cla (cla_share_factor {f.cfg.get('cla_share_factor')!r}) is not read: vLLM v0.34.0 "
                     "(transformers 5.24 HunYuanMoEV1Attention) gives every layer its own K/V cache")
    bias = f.flag("attention_bias", False)
    attn = _attn(f, "full", qkv_bias=bias, o_bias=bias, qk_norm=True)
    layers = [LayerSpec(attention=attn, mlp=MLPSpec(kind="moe", num_experts=n_exp, experts_per_token=k,
                                                    expert_intermediate_size=w, shared_intermediate_size=width))
              for k, w in zip(tops, widths)]
    return {"layers": layers, "notes": notes} if notes else {"layers": layers}


def _gdn(f: Fields) -> SSMSpec:
    return SSMSpec(
        kind="gated_deltanet",
        num_k_heads=f.pos("linear_num_key_heads"),
        num_v_heads=f.pos("linear_num_value_heads"),
        head_k_dim=f.pos("linear_key_head_dim"),
        head_v_dim=f.pos("linear_value_head_dim"),
        d_conv=f.pos("linear_conv_kernel_dim"),
        conv_bias=False,
    )


def _read_qwen3_next(f: Fields, mt: str) -> ReaderParts:
    """Qwen3-Next (Qwen3NextConfig) and Qwen3.5 text (Qwen3_5TextConfig / Qwen3_5MoeTextConfig):
    Gated DeltaNet layers with one gated full-attention layer every full_attention_interval."""
    n = f.pos("num_hidden_layers")
    interval = f.pos("full_attention_interval", 4)
    types = f.layer_types(n, lambda i: "full_attention" if (i + 1) % interval == 0 else "linear_attention")
    moe = mt in ("qwen3_next", "qwen3_5_moe_text")
    layers = []
    for i, t in enumerate(types):
        mlp = _qwen_moe_mlp(f, i, shared=True) if moe else _dense(f)
        if t == "linear_attention":
            layers.append(LayerSpec(ssm=_gdn(f), mlp=mlp))
        else:
            attn = _attn(f, "full", qk_norm=True, output_gate=f.flag("attn_output_gate", True),
                         qkv_bias=f.flag("attention_bias", False))
            layers.append(LayerSpec(attention=attn, mlp=mlp))
    # the checkpoint's MTP layers (vLLM Qwen3NextMTP / Qwen3_5MTP), not loaded unless speculative decoding asks
    return {"layers": layers, "mtp_layers": f.int("mtp_num_hidden_layers", 0)}


def _read_deepseek(f: Fields, mt: str) -> ReaderParts:
    """DeepseekV2/V3/V32 (and Kimi-K2, which ships the DeepseekV3 architecture)."""
    n = f.pos("num_hidden_layers")
    heads = f.pos("num_attention_heads")
    mla = MLASpec(
        kv_lora_rank=f.pos("kv_lora_rank"),
        q_lora_rank=f.opt_int("q_lora_rank", None),
        qk_nope_head_dim=f.pos("qk_nope_head_dim"),
        qk_rope_head_dim=f.pos("qk_rope_head_dim"),
        v_head_dim=f.pos("v_head_dim"),
        index_n_heads=f.int("index_n_heads") if mt == "deepseek_v32" else 0,
        index_head_dim=f.int("index_head_dim") if mt == "deepseek_v32" else 0,
        index_topk=f.int("index_topk", 0) if mt == "deepseek_v32" else 0,
        indexer_rope_interleave=mt == "deepseek_v32" and f.cfg.get("indexer_rope_interleave") is True,
    )
    attn = AttentionSpec(
        kind="mla",
        num_heads=heads,
        num_kv_heads=heads,
        head_dim_k=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
        head_dim_v=mla.v_head_dim,
        mla=mla,
    )
    first_dense = f.int("first_k_dense_replace", 0)
    freq = f.pos("moe_layer_freq", 1)
    n_routed = f.opt_int("n_routed_experts", None)
    layers = []
    for i in range(n):
        if n_routed and i >= first_dense and i % freq == 0:
            mlp = MLPSpec(
                kind="moe",
                num_experts=n_routed,
                experts_per_token=f.pos("num_experts_per_tok"),
                expert_intermediate_size=f.pos("moe_intermediate_size"),
                shared_intermediate_size=f.int("n_shared_experts", 0) * f.pos("moe_intermediate_size"),
                router_score_bias=mt != "deepseek_v2",  # DeepseekV3TopkRouter's e_score_correction_bias
            )
        else:
            mlp = _dense(f)
        layers.append(LayerSpec(attention=attn, mlp=mlp))
    return {"layers": layers, "mtp_layers": f.int("num_nextn_predict_layers", 0)}


def _read_glm4_moe(f: Fields, mt: str) -> ReaderParts:
    """Glm4MoeConfig: first_k_dense_replace dense layers, then routed + shared experts."""
    n = f.pos("num_hidden_layers")
    attn = _attn(f, "full", qkv_bias=f.flag("attention_bias", False), qk_norm=f.flag("use_qk_norm", False))
    first_dense = f.int("first_k_dense_replace", 1)
    layers = []
    for i in range(n):
        if i >= first_dense:
            mlp = MLPSpec(
                kind="moe",
                num_experts=f.pos("n_routed_experts"),
                experts_per_token=f.pos("num_experts_per_tok"),
                expert_intermediate_size=f.pos("moe_intermediate_size"),
                shared_intermediate_size=f.int("n_shared_experts", 1) * f.pos("moe_intermediate_size"),
                router_score_bias=True,  # Glm4MoeTopkRouter's e_score_correction_bias
            )
        else:
            mlp = _dense(f)
        layers.append(LayerSpec(attention=attn, mlp=mlp))
    return {"layers": layers, "mtp_layers": f.int("num_nextn_predict_layers", 0)}


def _read_gpt_oss(f: Fields, mt: str) -> ReaderParts:
    """GptOssConfig: alternating sliding/full attention with sinks; biased experts and router."""
    n = f.pos("num_hidden_layers")
    window = f.window()
    types = f.layer_types(n, lambda i: "sliding_attention" if i % 2 == 0 else "full_attention")
    k = f.pos("num_experts_per_tok") if f.has("num_experts_per_tok") else f.pos("experts_per_token")
    moe = MLPSpec(
        kind="moe",
        num_experts=f.pos("num_local_experts"),
        experts_per_token=k,
        expert_intermediate_size=f.pos("intermediate_size"),
        expert_bias=True,
        router_bias=True,
    )
    bias = f.flag("attention_bias", True)
    return {
        "layers": [
            LayerSpec(attention=_attn(f, _swa_kind(t), window, sinks=True, qkv_bias=bias, o_bias=bias), mlp=moe)
            for t in types
        ]
    }


def _read_llama4(f: Fields, mt: str) -> ReaderParts:
    """Llama4TextConfig: chunked-local attention on RoPE layers, global NoPE every
    no_rope_layer_interval-th layer; MoE layers (routed + one shared expert) every
    interleave_moe_layer_step; use_qk_norm is a weightless L2 norm."""
    n = f.pos("num_hidden_layers")
    # Llama4TextConfig.__init__ (transformers 5.x) derives both lists from the config's own counts when the
    # config does not give them: the class-default instance's lists (48 layers, every one MoE) never apply.
    interval = f.pos("no_rope_layer_interval", 4)
    given = f.int_list("no_rope_layers", None) if "no_rope_layers" in f.cfg else None
    no_rope = given or [int((i + 1) % interval != 0) for i in range(n)]
    if len(no_rope) != n:
        raise ConfigError(f.where, "no_rope_layers", f"must list {n} layers")
    step = f.int("interleave_moe_layer_step", 1)
    moe_layers = f.int_list("moe_layers", None) if "moe_layers" in f.cfg else None
    if moe_layers is None:
        moe_layers = list(range(step - 1, n, step)) if step > 0 else []
    chunk = f.opt_int("attention_chunk_size", None)
    layers = []
    for i in range(n):
        kind = "chunked" if no_rope[i] and chunk else "full"
        if i in moe_layers:
            mlp = MLPSpec(
                kind="moe",
                num_experts=f.pos("num_local_experts"),
                experts_per_token=f.pos("num_experts_per_tok"),
                expert_intermediate_size=f.pos("intermediate_size"),
                shared_intermediate_size=f.pos("intermediate_size"),
            )
        else:
            mlp = _dense(f, "intermediate_size_mlp")
        layers.append(LayerSpec(attention=_attn(f, kind, chunk, qkv_bias=f.flag("attention_bias", False)), mlp=mlp))
    return {"layers": layers}


def _read_gemma4(f: Fields, mt: str) -> ReaderParts:
    """Gemma4TextConfig: sliding layers (head_dim, num_key_value_heads) and global layers
    (global_head_dim, num_global_key_value_heads, V = K when attention_k_eq_v); optional MoE
    block beside the dense MLP; the last num_kv_shared_layers reuse earlier layers' KV."""
    n = f.pos("num_hidden_layers")
    window = f.window()
    types = f.layer_types(n, lambda i: "full_attention" if (i + 1) % 6 == 0 else "sliding_attention")
    k_eq_v = f.flag("attention_k_eq_v", False)
    moe = f.flag("enable_moe_block", False)
    shared_kv = f.int("num_kv_shared_layers", 0)
    first_shared = n - shared_kv
    wide = f.flag("use_double_wide_mlp", False)  # Gemma4TextMLP: KV-shared layers get 2 x intermediate_size
    last_of_type: dict[str, int] = {}
    layers = []
    for i, t in enumerate(types):
        kind = _swa_kind(t)
        if kind == "full":
            gkv = None if f("num_global_key_value_heads", None) is None else f.pos("num_global_key_value_heads")
            attn_kw: dict[str, Any] = dict(
                head_dim=f.opt_pos("global_head_dim") or f.pos("head_dim"),
                num_kv_heads=gkv if gkv is not None else f.pos("num_key_value_heads"),
                k_eq_v=k_eq_v,
            )
        else:
            attn_kw = {}
        if shared_kv and i >= first_shared:  # Gemma4TextAttention: reuse the last earlier layer of this type
            attn_kw["kv_shared_from"] = last_of_type.get(t)
        else:
            last_of_type[t] = i
        attn = _attn(f, kind, window, qk_norm=True, qkv_bias=f.flag("attention_bias", False), **attn_kw)
        if moe:
            mlp = MLPSpec(
                kind="moe",
                intermediate_size=f.pos("intermediate_size"),
                num_experts=f.pos("num_experts"),
                experts_per_token=f.pos("top_k_experts"),
                expert_intermediate_size=f.pos("moe_intermediate_size"),
                router_scales=True,
            )
            norms = 7  # + post_feedforward_layernorm_1/_2, pre_feedforward_layernorm_2
        else:
            mlp = _dense(f)
            if wide and shared_kv and i >= first_shared:
                mlp = MLPSpec(kind="dense", intermediate_size=2 * f.pos("intermediate_size"))
            norms = 4
        layers.append(LayerSpec(attention=attn, mlp=mlp, norms=norms))
    return {"layers": layers, "extra_tensors": _gemma4_per_layer_inputs(f, n)}


def _read_diffusion_gemma(f: Fields, mt: str) -> ReaderParts:
    """DiffusionGemmaTextConfig (transformers 5.24 models/diffusion_gemma) as vLLM builds it (v0.34.0
    vllm/model_executor/models/diffusion_gemma.py DiffusionGemmaForConditionalGeneration.__init__): the Gemma4Model
    backbone with attention_k_eq_v forced on (full layers ship k_proj only, V = K), the MoE block beside every dense
    MLP wherever num_experts is set (vllm/model_executor/models/gemma4.py Gemma4DecoderLayer: enable_moe_block is
    num_experts is not None), the full layers' head_dim global_head_dim (the config class pops it into
    per_layer_config, default 512) and their KV heads num_global_key_value_heads where given; plus the decoder's
    self-conditioning MLP (DiffusionGemmaSelfConditioning: a weighted pre-norm, gate/up/down plain nn.Linear of
    intermediate_size, held whole on every rank, and a weightless post-norm; vLLM would take a top-level
    self_conditioning_size instead, which no published config has: refused in _spec_from_config). A text
    config with use_bidirectional_attention "all" halves its sliding window plus one (the config's __post_init__)."""
    cfg = dict(f.cfg)
    cfg["attention_k_eq_v"] = True
    cfg["enable_moe_block"] = cfg.get("num_experts") is not None
    cfg.setdefault("global_head_dim", 512)
    if cfg.get("use_bidirectional_attention") == "all" and isinstance(cfg.get("sliding_window"), int):
        cfg["sliding_window"] = cfg["sliding_window"] // 2 + 1
    g = Fields(cfg, mt, f.where)
    parts = _read_gemma4(g, mt)
    hidden = g.pos("hidden_size")
    sc = g.pos("intermediate_size")
    p = "model.decoder.self_conditioning"
    parts["extra_tensors"] = list(parts.get("extra_tensors", [])) + [
        TensorSpec(name=f"{p}.pre_norm.weight", shape=(hidden,), group="norms"),
        TensorSpec(name=f"{p}.gate_proj.weight", shape=(sc, hidden), group="dense_mlp"),
        TensorSpec(name=f"{p}.up_proj.weight", shape=(sc, hidden), group="dense_mlp"),
        TensorSpec(name=f"{p}.down_proj.weight", shape=(hidden, sc), group="dense_mlp")]
    return parts


def _gemma4_per_layer_inputs(f: Fields, n: int) -> list[TensorSpec]:
    """Gemma4TextModel per-layer inputs (E2B/E4B, hidden_size_per_layer_input > 0): a second
    embedding table of n x ple columns, its projection from the hidden state and norm, and in
    each layer an input gate, a projection back to hidden and a norm."""
    ple = f.int("hidden_size_per_layer_input", 0)
    if not ple:
        return []
    hidden = f.pos("hidden_size")
    vocab = f.pos("vocab_size_per_layer_input", f.pos("vocab_size"))
    p = "model.language_model"
    out = [TensorSpec(name=f"{p}.embed_tokens_per_layer.weight", shape=(vocab, n * ple), group="embeddings"),
           TensorSpec(name=f"{p}.per_layer_model_projection.weight", shape=(n * ple, hidden), group="dense_mlp"),
           TensorSpec(name=f"{p}.per_layer_projection_norm.weight", shape=(ple,), group="norms")]
    for i in range(n):
        out += [TensorSpec(name=f"{p}.layers.{i}.per_layer_input_gate.weight", shape=(ple, hidden), group="dense_mlp"),
                TensorSpec(name=f"{p}.layers.{i}.per_layer_projection.weight", shape=(hidden, ple), group="dense_mlp"),
                TensorSpec(name=f"{p}.layers.{i}.post_per_layer_input_norm.weight", shape=(hidden,), group="norms")]
    return out


# ---------------------------------------------------------------- state-space and hybrids


def _mamba1(f: Fields, prefix: str = "") -> SSMSpec:
    """Mamba-1 mixer as in FalconMambaConfig / JambaConfig."""
    hidden = f.pos("hidden_size")
    if not prefix and f.has("intermediate_size"):  # FalconMambaConfig keeps an explicit intermediate_size
        d_inner = f.pos("intermediate_size")
    else:
        d_inner = f.pos(prefix + "expand") * hidden
    dt_rank = f(prefix + ("time_step_rank" if not prefix else "dt_rank"))
    if dt_rank == "auto":  # both classes: ceil(hidden_size / 16)
        dt_rank = math.ceil(hidden / 16)
    if isinstance(dt_rank, bool) or not isinstance(dt_rank, int) or dt_rank <= 0:
        raise ConfigError(f.where, prefix + ("time_step_rank" if not prefix else "dt_rank"),
                          f"must be a positive integer or 'auto', got {dt_rank!r:.40}")
    return SSMSpec(
        kind="mamba1",
        d_inner=d_inner,
        d_state=f.pos(prefix + ("state_size" if not prefix else "d_state")),
        d_conv=f.pos(prefix + ("conv_kernel" if not prefix else "d_conv")),
        dt_rank=int(dt_rank),
        conv_bias=f.flag(prefix + ("use_conv_bias" if not prefix else "conv_bias")),
        proj_bias=f.flag(prefix + ("use_bias" if not prefix else "proj_bias")),
        bcdt_norms=prefix == "mamba_",
        gated_norm=False,
    )


def _read_falcon_mamba(f: Fields, mt: str) -> ReaderParts:
    n = f.pos("num_hidden_layers")
    ssm = _mamba1(f)
    return {"layers": [LayerSpec(ssm=ssm, mlp=MLPSpec(kind="none"), norms=1) for _ in range(n)]}


def _read_mamba2(f: Fields, mt: str) -> ReaderParts:
    """Mamba2Config (Mamba-Codestral): intermediate = expand * hidden, heads * head_dim."""
    n = f.pos("num_hidden_layers")
    ssm = SSMSpec(
        kind="mamba2",
        d_inner=f.pos("expand") * f.pos("hidden_size"),
        d_state=f.pos("state_size"),
        d_conv=f.pos("conv_kernel"),
        n_heads=f.pos("num_heads"),
        head_dim=f.pos("head_dim"),
        n_groups=f.pos("n_groups"),
        conv_bias=f.flag("use_conv_bias"),
        proj_bias=f.flag("use_bias"),
    )
    return {"layers": [LayerSpec(ssm=ssm, mlp=MLPSpec(kind="none"), norms=1) for _ in range(n)]}


def _read_jamba(f: Fields, mt: str) -> ReaderParts:
    """JambaConfig: attention every attn_layer_period from attn_layer_offset, Mamba-1 elsewhere;
    experts every expert_layer_period from expert_layer_offset."""
    n = f.pos("num_hidden_layers")
    ap, ao = f.pos("attn_layer_period"), f.int("attn_layer_offset")
    ep, eo = f.pos("expert_layer_period"), f.int("expert_layer_offset")
    ssm = _mamba1(f, "mamba_")
    layers = []
    for i in range(n):
        if i % ep == eo:
            mlp = MLPSpec(
                kind="moe",
                num_experts=f.pos("num_experts"),
                experts_per_token=f.pos("num_experts_per_tok"),
                expert_intermediate_size=f.pos("intermediate_size"),
            )
        else:
            mlp = _dense(f)
        if i % ap == ao:
            layers.append(LayerSpec(attention=_attn(f, "full"), mlp=mlp))
        else:
            layers.append(LayerSpec(ssm=ssm, mlp=mlp))
    return {"layers": layers}


def _mamba2_from(f: Fields, d_inner: int, heads: str, head_dim: str, groups: str, state: str, conv: str,
                 conv_bias: str, proj_bias: str) -> SSMSpec:
    return SSMSpec(
        kind="mamba2",
        d_inner=d_inner,
        n_heads=f.pos(heads),
        head_dim=f.pos(head_dim),
        n_groups=f.pos(groups),
        d_state=f.pos(state),
        d_conv=f.pos(conv),
        conv_bias=f.flag(conv_bias),
        proj_bias=f.flag(proj_bias),
    )


def _read_nemotron_h(f: Fields, mt: str) -> ReaderParts:
    """NemotronHConfig: hybrid_override_pattern gives each layer one mixer: 'M' Mamba-2,
    '*' attention, '-' MLP (relu2, not gated), 'E' MoE."""
    n = f.pos("num_hidden_layers")
    pattern = f("hybrid_override_pattern", None)
    if pattern is None and f.has("layers_block_type"):
        names = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
        types = f.str_list("layers_block_type", n) or []
        if any(t not in names for t in types):
            raise ConfigError(f.where, "layers_block_type", f"has a layer type outside {sorted(names)}")
        pattern = "".join(names[t] for t in types)
    if not isinstance(pattern, str) or len(pattern) != n:
        raise ConfigError(f.where, "hybrid_override_pattern", f"must have {n} characters")
    hd = f.opt_pos("head_dim") or f.opt_pos("attention_head_dim") or f.pos("hidden_size") // f.pos("num_attention_heads")
    none = MLPSpec(kind="none")
    layers = []
    for ch in pattern:
        if ch == "M":
            ssm = _mamba2_from(f, f.pos("mamba_num_heads") * f.pos("mamba_head_dim"), "mamba_num_heads",
                               "mamba_head_dim", "n_groups", "ssm_state_size", "conv_kernel", "use_conv_bias",
                               "use_bias")
            layers.append(LayerSpec(ssm=ssm, mlp=none, norms=1))
        elif ch == "*":
            attn = _attn(f, "full", head_dim=hd, qkv_bias=f.flag("attention_bias", False),
                         o_bias=f.flag("attention_bias", False))
            layers.append(LayerSpec(attention=attn, mlp=none, norms=1))
        elif ch == "-":
            layers.append(LayerSpec(mlp=_dense(f, gated=False, bias=f.flag("mlp_bias", False)), norms=1))
        elif ch == "E":  # NemotronHMoE: relu2 routed experts + one shared expert, noaux_tc router bias
            # Nemotron 3 Super (moe_latent_size): the routed experts work in a latent space behind
            # fc1/fc2_latent_proj (mlp_bias); router and shared expert stay on hidden_size
            # (transformers 5.24 NemotronHMoE / NemotronHExperts; vLLM v0.33.0 nemotron_h.py NemotronHMoE)
            moe = MLPSpec(kind="moe", gated=False, num_experts=f.pos("n_routed_experts"),
                          experts_per_token=f.pos("num_experts_per_tok"),
                          expert_intermediate_size=f.pos("moe_intermediate_size"),
                          shared_intermediate_size=f.int("n_shared_experts", 1) * f.pos("moe_shared_expert_intermediate_size"),
                          router_score_bias=True, bias=f.flag("mlp_bias", False),
                          expert_input_size=f.opt_pos("moe_latent_size") or 0)
            layers.append(LayerSpec(mlp=moe, norms=1))
        else:
            raise ConfigError(f.where, "hybrid_override_pattern", f"has layer type {ch!r} that vramcalc does not model")
    return {"layers": layers}


def _read_granite_hybrid(f: Fields, mt: str) -> ReaderParts:
    """GraniteMoeHybridConfig: layer_types 'mamba' / 'attention'; each layer has routed experts
    (intermediate_size each) and a shared expert (shared_intermediate_size)."""
    n = f.pos("num_hidden_layers")
    f("layer_types")  # required: the attention layers' positions decide the KV cache
    types = f.layer_types(n, lambda i: "mamba")
    hidden = f.pos("hidden_size")
    experts = f.int("num_local_experts", 0)
    if experts:
        mlp = MLPSpec(kind="moe", num_experts=experts, experts_per_token=f.pos("num_experts_per_tok"),
                      expert_intermediate_size=f.pos("intermediate_size"),
                      shared_intermediate_size=f.int("shared_intermediate_size", 0))
    else:
        mlp = MLPSpec(kind="dense", intermediate_size=f.pos("shared_intermediate_size"))
    layers = []
    for t in types:
        if t == "mamba":
            ssm = _mamba2_from(f, f.pos("mamba_expand") * hidden, "mamba_n_heads", "mamba_d_head",
                               "mamba_n_groups", "mamba_d_state", "mamba_d_conv", "mamba_conv_bias",
                               "mamba_proj_bias")
            layers.append(LayerSpec(ssm=ssm, mlp=mlp))
        else:
            layers.append(LayerSpec(attention=_attn(f, "full", qkv_bias=f.flag("attention_bias", False),
                                                     o_bias=f.flag("attention_bias", False)), mlp=mlp))
    return {"layers": layers}


def _read_falcon_h1(f: Fields, mt: str) -> ReaderParts:
    """FalconH1Config: every layer runs attention and a Mamba-2 mixer side by side, then an MLP."""
    n = f.pos("num_hidden_layers")
    d_ssm = f.opt_pos("mamba_d_ssm") or f.pos("mamba_expand") * f.pos("hidden_size")
    ssm = _mamba2_from(f, d_ssm, "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "mamba_d_state",
                       "mamba_d_conv", "mamba_conv_bias", "mamba_proj_bias")
    ssm = ssm.model_copy(update={"gated_norm": f.flag("mamba_rms_norm", False)})
    attn = _attn(f, "full", qkv_bias=f.flag("attention_bias", False), o_bias=f.flag("attention_bias", False))
    mlp = _dense(f, bias=f.flag("mlp_bias", False))
    return {"layers": [LayerSpec(attention=attn, ssm=ssm, mlp=mlp, norms=2) for _ in range(n)]}


def _read_zamba2(f: Fields, mt: str) -> ReaderParts:
    """Zamba2 (Zyphra): Mamba-2 layers; at 'hybrid' layers a shared transformer block (one of
    num_mem_blocks, weights shared) runs on concat(hidden, embeddings), so attention is 2x wide.
    Legacy keys of Zyphra's own configs (mamba_headdim, state_size, ...) are read first."""
    n = f.pos("num_hidden_layers")
    hidden = f.pos("hidden_size")
    types = f.str_list("layers_block_type", n) or f.layer_types(n, lambda i: "mamba")
    expand = f.int("expansion_factor") if f.has("expansion_factor") else f.pos("mamba_expand")
    d_inner = expand * hidden
    head_dim = f.pos("mamba_headdim") if f.has("mamba_headdim") else None
    n_heads = d_inner // head_dim if head_dim else f.pos("n_mamba_heads")
    head_dim = head_dim or d_inner // n_heads
    d_state = f.pos("state_size") if f.has("state_size") else f.pos("mamba_d_state")
    d_conv = f.pos("conv_dimension") if f.has("conv_dimension") else f.pos("mamba_d_conv")
    groups = f.pos("mamba_ngroups")
    ssm = SSMSpec(kind="mamba2", d_inner=d_inner, n_heads=n_heads, head_dim=head_dim, n_groups=groups,
                  d_state=d_state, d_conv=d_conv, conv_bias=True, proj_bias=f.flag("add_bias_linear", False))
    heads = f.pos("num_attention_heads")
    attn_width = 2 * hidden  # Zamba2Config.attention_hidden_size
    attn = AttentionSpec(kind="full", num_heads=heads, num_kv_heads=f.pos("num_key_value_heads"),
                         head_dim_k=attn_width // heads, head_dim_v=attn_width // heads, input_size=attn_width)
    ffn = f.pos("ffn_hidden_size") if f.has("ffn_hidden_size") else f.pos("intermediate_size")
    rank = f.pos("lora_rank") if f.has("lora_rank") else f.pos("adapter_rank")
    mlp_adapter = f.flag("use_shared_block_lora") if f.has("use_shared_block_lora") else f.flag("use_shared_mlp_adapter")
    attn_adapter = f.flag("use_shared_attention_lora") if f.has("use_shared_attention_lora") else f.flag(
        "use_shared_attention_adapter")
    n_blocks = f.pos("num_mem_blocks")
    layers, extra = [], []
    hybrid_i = 0
    for i, t in enumerate(types):
        if t == "hybrid":
            layers.append(LayerSpec(attention=attn, ssm=ssm, mlp=MLPSpec(kind="none"), norms=1,
                                    attention_weights_shared=True))
            p = f"model.layers.{i}"
            extra.append(TensorSpec(name=f"{p}.linear.weight", shape=(hidden, hidden), group="attention"))
            if mlp_adapter:
                extra += [TensorSpec(name=f"{p}.mlp_adapter.0.weight", shape=(rank, hidden), group="dense_mlp"),
                          TensorSpec(name=f"{p}.mlp_adapter.1.weight", shape=(2 * ffn, rank), group="dense_mlp")]
            if attn_adapter:
                for proj in "qkv":
                    extra += [TensorSpec(name=f"{p}.{proj}_adapter.0.weight", shape=(rank, attn_width), group="attention"),
                              TensorSpec(name=f"{p}.{proj}_adapter.1.weight", shape=(attn_width, rank), group="attention")]
            hybrid_i += 1
        else:
            layers.append(LayerSpec(ssm=ssm, mlp=MLPSpec(kind="none"), norms=1))
    for b in range(min(n_blocks, hybrid_i)):  # the shared transformer blocks
        p = f"model.shared_transformer.{b}"
        extra += [
            TensorSpec(name=f"{p}.self_attn.q_proj.weight", shape=(attn_width, attn_width), group="attention"),
            TensorSpec(name=f"{p}.self_attn.k_proj.weight", shape=(attn_width, attn_width), group="attention"),
            TensorSpec(name=f"{p}.self_attn.v_proj.weight", shape=(attn_width, attn_width), group="attention"),
            TensorSpec(name=f"{p}.self_attn.o_proj.weight", shape=(hidden, attn_width), group="attention"),
            TensorSpec(name=f"{p}.feed_forward.gate_up_proj.weight", shape=(2 * ffn, hidden), group="dense_mlp"),
            TensorSpec(name=f"{p}.feed_forward.down_proj.weight", shape=(hidden, ffn), group="dense_mlp"),
            TensorSpec(name=f"{p}.input_layernorm.weight", shape=(attn_width,), group="norms"),
            TensorSpec(name=f"{p}.pre_ff_layernorm.weight", shape=(hidden,), group="norms"),
        ]
    return {"layers": layers, "extra_tensors": extra}


def _read_lfm2(f: Fields, mt: str) -> ReaderParts:
    """LFM2 (vLLM v0.34.0 vllm/model_executor/models/lfm2.py Lfm2Model): layer_types (transformers 5.24 Lfm2Config:
    from full_attn_idxs where absent, every layer full attention where both are) picks Lfm2AttentionDecoderLayer
    (full_attention) or Lfm2ShortConvDecoderLayer (any other type). Attention: head_dim hidden_size // heads, per-head
    q/k RMSNorms, no bias. Short conv (vllm/model_executor/layers/mamba/short_conv.py ShortConv): in_proj to 3 x
    conv_dim, a depthwise conv of conv_L_cache taps, out_proj, biases by conv_bias; its state is the conv state only.
    The MLP (Lfm2MLP) takes intermediate_size (Lfm2Config reads block_ff_dim into it), made 2/3 of it, times
    block_ffn_dim_multiplier, rounded up to block_multiple_of where block_auto_adjust_ff_dim is set."""
    n = f.pos("num_hidden_layers")
    hidden = f.pos("hidden_size")
    heads = f.pos("num_attention_heads")
    idxs = None if "layer_types" in f.cfg else f.int_list("full_attn_idxs", None)
    types = f.layer_types(n, lambda i: "full_attention" if idxs is None or i in idxs else "conv")
    for key in ("conv_dim", "block_dim"):  # vLLM sizes the mixer and the MLP by them, transformers by hidden_size
        if f.pos(key) != hidden:
            raise NotModelledError(f"{f.where}: {key} {f.pos(key):,} differs from hidden_size {hidden:,}: vLLM v0.34.0 "
                                   "sizes LFM2 by it, transformers by hidden_size; not modelled")
    if hidden % heads:
        raise ConfigError(f.where, "num_attention_heads", "does not divide hidden_size (Lfm2Attention's head_dim)")
    ff = f.pos("block_ff_dim") if f.has("block_ff_dim") else f.pos("intermediate_size")
    if f.flag("block_auto_adjust_ff_dim"):
        ff = int(2 * ff / 3)
        mult = f("block_ffn_dim_multiplier")
        if mult is not None:
            ff = int(mult * ff)
        ff = -(-ff // f.pos("block_multiple_of")) * f.pos("block_multiple_of")
    mlp = MLPSpec(kind="dense", intermediate_size=ff)
    attn = _attn(f, "full", head_dim=hidden // heads, qk_norm=True)
    conv = SSMSpec(kind="short_conv", d_inner=hidden, d_conv=f.pos("conv_L_cache"), conv_bias=f.flag("conv_bias"),
                   proj_bias=f.flag("conv_bias"), gated_norm=False)
    layers = [LayerSpec(attention=attn, mlp=mlp) if t == "full_attention" else LayerSpec(ssm=conv, mlp=mlp)
              for t in types]
    # Lfm2ForCausalLM.__init__ ties lm_head to embed_tokens whatever tie_word_embeddings (or Lfm2Config's
    # tie_embedding) says
    return {"layers": layers, "tie_word_embeddings": True}


def _read_minicpm3(f: Fields, mt: str) -> ReaderParts:
    """MiniCPM3 (vLLM v0.34.0 vllm/model_executor/models/minicpm3.py MiniCPM3Attention): DeepSeek-V2's low-rank
    projections (q_a / q_b, kv_a_proj_with_mqa, kv_b, their norms), but attention is a plain Attention of every head
    with K and V both qk_nope_head_dim + qk_rope_head_dim wide (V zero-padded), so the KV cache holds whole heads, not
    the latent: a full-attention layer (kind full) with the MLA projections. scale_emb / scale_depth scale
    activations only. A dense SwiGLU MLP (MiniCPMMLP); MiniCPM's experts (num_experts) are not read."""
    if f.cfg.get("num_experts"):
        raise NotModelledError(f"{f.where}: MiniCPM3 with num_experts (MiniCPMMoE) is not modelled")
    n = f.pos("num_hidden_layers")
    heads = f.pos("num_attention_heads")
    mla = MLASpec(kv_lora_rank=f.pos("kv_lora_rank"), q_lora_rank=f.pos("q_lora_rank"),
                  qk_nope_head_dim=f.pos("qk_nope_head_dim"), qk_rope_head_dim=f.pos("qk_rope_head_dim"),
                  v_head_dim=f.pos("v_head_dim"))
    qk = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    attn = AttentionSpec(kind="full", num_heads=heads, num_kv_heads=heads, head_dim_k=qk, head_dim_v=qk, mla=mla)
    return {"layers": [LayerSpec(attention=attn, mlp=_dense(f))] * n}



# vLLM v0.34.0 vllm/transformers_utils/configs/kimi_linear.py KimiLinearConfig (vLLM's own class for kimi_linear, not
# transformers'): the Kimi-K3 features that class also carries, which Kimi-Linear does not use and this reader does
# not model (sparse-attention indexer, output-gated MLA, attention residual blocks, latent experts, MTP layers)
_KIMI_K3_ONLY = ("dsa_config", "mla_use_output_gate", "attn_res_block_size", "routed_expert_hidden_size",
                 "latent_moe_use_norm", "num_nextn_predict_layers", "q_lora_rank")


def _read_kimi_linear(f: Fields, mt: str) -> ReaderParts:
    """Kimi-Linear (vLLM v0.34.0 vllm/models/kimi_k3/nvidia/model.py, the decoder layer's __init__): a layer whose
    index + 1 is in linear_attn_config.kda_layers is Kimi delta attention (vllm/model_executor/layers/mamba/gdn/
    kimi_gdn_linear_attn.py KimiGatedDeltaNetAttention: num_heads heads of head_dim for q, k and v, a short conv of
    short_conv_kernel_size, low-rank forget and output gates); every other layer is NoPE MLA (MultiHeadLatentAttention,
    no rotary embedding: mla_use_nope, which vLLM asserts). MoE (KimiMoE) from first_k_dense_replace on, every
    moe_layer_freq-th layer: num_experts of moe_intermediate_size, top num_experts_per_token, num_shared_experts
    shared, a score-correction bias; dense layers of intermediate_size before. Absent fields take vLLM's
    KimiLinearConfig defaults."""
    for key in _KIMI_K3_ONLY:
        if _set(f.cfg.get(key)):
            raise NotModelledError(f"{f.where}: kimi_linear with {key} (a Kimi-K3 feature of vLLM's KimiLinearConfig) "
                                   "is not modelled")
    lin = f.cfg.get("linear_attn_config")
    if not isinstance(lin, dict) or not isinstance(lin.get("kda_layers"), list):
        raise ConfigError(f.where, "linear_attn_config", "must give kda_layers (vLLM asserts it)")
    if lin.get("use_full_rank_gate"):
        raise NotModelledError(f"{f.where}: linear_attn_config.use_full_rank_gate (vLLM's KimiK3DeltaAttention) is "
                               "not modelled")
    if not f.flag("mla_use_nope", False):
        raise NotModelledError(f"{f.where}: kimi_linear without mla_use_nope: vLLM v0.34.0 refuses it (AssertionError: "
                               "Kimi-K3 MLA (MultiHeadLatentAttention) is NoPE-only)")
    sub = Fields(lin, mt, f"{f.where} linear_attn_config")
    n = f.pos("num_hidden_layers")
    kda_layers = sub.int_list("kda_layers") or []
    heads, head_dim = sub.pos("num_heads"), sub.pos("head_dim")
    kda = SSMSpec(kind="kda", num_k_heads=heads, num_v_heads=heads, head_k_dim=head_dim, head_v_dim=head_dim,
                  d_conv=sub.pos("short_conv_kernel_size"), conv_bias=False)
    q_heads = f.pos("num_attention_heads")
    mla = MLASpec(kv_lora_rank=f.pos("kv_lora_rank"), q_lora_rank=None, qk_nope_head_dim=f.pos("qk_nope_head_dim"),
                  qk_rope_head_dim=f.pos("qk_rope_head_dim"), v_head_dim=f.pos("v_head_dim"), nope=True)
    attn = AttentionSpec(kind="mla", num_heads=q_heads, num_kv_heads=q_heads,
                         head_dim_k=mla.qk_nope_head_dim + mla.qk_rope_head_dim, head_dim_v=mla.v_head_dim, mla=mla)
    experts = f.opt_pos("num_experts")
    first_dense, freq = f.int("first_k_dense_replace", 0), f.pos("moe_layer_freq", 1)
    layers = []
    for i in range(n):
        if experts and i >= first_dense and i % freq == 0:
            moe = f.pos("moe_intermediate_size")
            mlp = MLPSpec(kind="moe", num_experts=experts, experts_per_token=f.pos("num_experts_per_token"),
                          expert_intermediate_size=moe, shared_intermediate_size=f.int("num_shared_experts", 0) * moe,
                          router_score_bias=True)
        else:
            mlp = _dense(f)
        layers.append(LayerSpec(ssm=kda, mlp=mlp) if i + 1 in kda_layers else LayerSpec(attention=attn, mlp=mlp))
    return {"layers": layers, "max_position_embeddings": 4096}


# model_type -> (reader, the model_type whose defaults apply)
READERS: dict[str, Callable[[Fields, str], ReaderParts]] = {
    "llama": _read_llama_like,
    "mistral": _read_llama_like,
    "qwen2": _read_llama_like,
    "qwen3": _read_llama_like,
    "phi3": _read_llama_like,
    "cohere": _read_llama_like,
    "gemma2": _read_llama_like,
    "gemma3_text": _read_llama_like,
    "mixtral": _read_mixtral,
    "qwen3_moe": _read_qwen3_moe,
    "qwen3_next": _read_qwen3_next,
    "qwen3_5_text": _read_qwen3_next,
    "qwen3_5_moe_text": _read_qwen3_next,
    "deepseek_v2": _read_deepseek,
    "deepseek_v3": _read_deepseek,
    "deepseek_v32": _read_deepseek,
    "glm4_moe": _read_glm4_moe,
    "gpt_oss": _read_gpt_oss,
    "llama4_text": _read_llama4,
    "gemma4_text": _read_gemma4,
    "diffusion_gemma_text": _read_diffusion_gemma,
    "falcon_mamba": _read_falcon_mamba,
    "mamba2": _read_mamba2,
    "jamba": _read_jamba,
    "nemotron_h": _read_nemotron_h,
    "granitemoehybrid": _read_granite_hybrid,
    "falcon_h1": _read_falcon_h1,
    "zamba2": _read_zamba2,
    "qwen3_vl_text": _read_qwen3_vl_text,
    "qwen3_vl_moe_text": _read_qwen3_moe,
    "minimax_m2": _read_minimax_m2,
    "minimax_m3": _read_minimax_m3,
    "olmoe": _read_olmoe,
    "ernie4_5_moe": _read_ernie45_moe,
    "hunyuan_v1_moe": _read_hunyuan_moe,
    "lfm2": _read_lfm2,
    "minicpm3": _read_minicpm3,
    "kimi_linear": _read_kimi_linear,
}
# Outer (composite or alias) model_type -> the text model_type inside it.
TEXT_TYPES = {
    "gemma3": "gemma3_text",
    "gemma4": "gemma4_text",
    "diffusion_gemma": "diffusion_gemma_text",
    "llama4": "llama4_text",
    "qwen3_5": "qwen3_5_text",
    "qwen3_5_moe": "qwen3_5_moe_text",
    "qwen3_vl": "qwen3_vl_text",
    "qwen3_vl_moe": "qwen3_vl_moe_text",
    "kimi_k2": "deepseek_v3",  # Kimi-K2 ships DeepseekV3ForCausalLM
    "kimi_k25": "deepseek_v3",  # Kimi_K25Config: text_config defaults to deepseek_v3 (kimi_k2 is renamed to it)
    # Qwen2.5-VL / Qwen2-VL: a Qwen2 decoder with M-RoPE (vLLM v0.34.0 models/qwen2_5_vl.py and qwen2_vl.py build
    # Qwen2ForCausalLM on the text config); the Hub files are flat (vision.FLAT_COMPOSITES), transformers 5 saves a
    # text_config of model_type qwen2_5_vl_text / qwen2_vl_text
    "qwen2_5_vl": "qwen2",
    "qwen2_5_vl_text": "qwen2",
    "qwen2_vl": "qwen2",
    "qwen2_vl_text": "qwen2",
    # MiniMax-M3: the Hub's minimax_m3_vl wraps a text_config of model_type minimax_m3; transformers 5.24 saves it
    # as minimax_m3_vl_text (MiniMaxM3VLTextConfig); vLLM v0.34.0 builds MiniMaxM3SparseForCausalLM on it
    "minimax_m3_vl": "minimax_m3",
    "minimax_m3_vl_text": "minimax_m3",
}
DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32", "bf16": "bfloat16",
          "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def _tied(cfg: dict[str, Any], text: dict[str, Any], f: Fields, outer_type: Any, notes: list[str]) -> bool:
    """Whether lm_head shares the embedding. transformers (PreTrainedModel.tie_weights) reads the
    flag of the top-level config, so a composite's own flag (or its class default) wins over the
    text_config's."""
    composite = _architectures().composite.get(outer_type) if text is not cfg else None
    if composite is None:
        return bool(f("tie_word_embeddings"))
    tie = bool(cfg.get("tie_word_embeddings", composite.tie_word_embeddings))
    inner = text.get("tie_word_embeddings")
    if inner is not None and bool(inner) != tie:
        notes.append(f"text_config says tie_word_embeddings={bool(inner)} but the top-level config "
                     f"(which transformers and the checkpoint follow) gives {tie}")
    return tie


def supported_model_types() -> list[str]:
    return sorted(set(READERS) | set(TEXT_TYPES))


# The ModelSpec's names for what a config.json calls otherwise, for check_spec's messages.
CONFIG_NAMES = {
    "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads", "num_kv_heads": "num_key_value_heads",
    "head_dim_k": "head_dim", "head_dim_v": "head_dim", "window": "sliding_window",
    "experts_per_token": "num_experts_per_tok", "expert_intermediate_size": "moe_intermediate_size",
    "mtp_layers": "num_nextn_predict_layers", "shared_intermediate_size": "shared_expert_intermediate_size",
}


def spec_from_config(cfg: Any, *, model_id: str, source: str, where: str | None = None) -> ModelSpec:
    """Build a ModelSpec from a parsed config.json dict. `where` names the file in errors. Every
    size is checked (validate.check_spec) before the spec is returned."""
    at = where or source
    return built(lambda: _spec_from_config(cfg, model_id=model_id, source=source, where=at), at, CONFIG_NAMES)


def _dflash_layer_types(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """A DFlash drafter's layers as vLLM builds them (vLLM v0.34.0 vllm/model_executor/models/qwen3_dflash.py
    _resolve_layer_attention): with layer_types, a layer slides where its type says sliding_attention; without
    (or with none sliding), every layer slides when dflash_config.use_swa is set. The window is
    dflash_config.swa_window_size, else the top-level sliding_window as transformers' Qwen2/Qwen3 config keeps it
    (only with use_sliding_window); a sliding layer without one is vLLM's ValueError. Its causality changes no
    KV spec (FullAttentionSpec / SlidingWindowSpec either way)."""
    n = cfg.get("num_hidden_layers")
    dc = cfg.get("dflash_config") or {}
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0 or not isinstance(dc, dict):
        return cfg
    types = cfg.get("layer_types")
    use_swa = bool(dc.get("use_swa", False))
    if isinstance(types, list) and len(types) == n and not (use_swa and "sliding_attention" not in types):
        sliding = [t == "sliding_attention" for t in types]
    else:
        sliding = [use_swa] * n
    top = cfg.get("sliding_window")
    if cfg.get("model_type") in ("qwen2", "qwen3") and not cfg.get("use_sliding_window", False):
        top = None
    window = dc.get("swa_window_size", top)
    if any(sliding) and window is None:
        raise ConfigError(where, "dflash_config.swa_window_size", "is not set (nor an effective top-level "
                          "sliding_window): vLLM refuses it: ValueError: DFlash sliding attention requires a window "
                          "size configured in dflash_config.swa_window_size or the top-level sliding_window.")
    return {**cfg, "layer_types": ["sliding_attention" if x else "full_attention" for x in sliding],
            "sliding_window": window if any(sliding) else None}


def _spec_from_config(cfg: Any, *, model_id: str, source: str, where: str) -> ModelSpec:
    if not isinstance(cfg, dict):
        raise ConfigError(where, "(top level)", "must be a JSON object")
    outer_type = cfg.get("model_type")
    if outer_type is not None and not isinstance(outer_type, str):
        raise ConfigError(where, "model_type", f"must be a string, got {outer_type!r:.40}")
    archs = cfg.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    text = cfg.get("text_config")
    if text is not None and not isinstance(text, dict):
        raise ConfigError(where, "text_config", "must be a JSON object")
    text = text or cfg
    if arch == "DFlashDraftModel" and text is cfg:
        cfg = text = _dflash_layer_types(cfg, where)
    mt = text.get("model_type") if text is not cfg else outer_type
    if mt is not None and not isinstance(mt, str):
        raise ConfigError(where, "text_config.model_type", f"must be a string, got {mt!r:.40}")
    if not isinstance(mt, str) and isinstance(outer_type, str):
        mt = outer_type
    if isinstance(mt, str):
        mt = TEXT_TYPES.get(mt, mt)
    notes: list[str] = []
    approximate = False
    if mt not in READERS and "block_configs" in text:
        # Llama-3.x-Nemotron Super / Ultra (DeciLMForCausalLM, model_type nemotron-nas): each layer's block_configs
        # entry skips attention or the FFN, replaces one by a linear layer, or sizes it by its own ffn_mult and
        # n_heads_in_group (vLLM v0.33.0 models/nemotron_nas.py); read as a uniform decoder it would be wrong
        raise NotModelledError(f"{where}: model_type {mt!r} (per-layer block_configs: attention and FFN skipped, "
                               "replaced by a linear layer or sized per layer) is not modelled; transformers has no "
                               "class for it to count it against")
    if mt not in READERS:
        # An unknown decoder with the standard fields: read as a Llama-style GQA decoder, as an upper bound, unless
        # its config has fields that reading would ignore (data/generic_fallback.json): routed experts, latent,
        # sparse or linear attention, recurrent layers, per-layer sizes. vLLM v0.34.0's own classes for such
        # types count many times the Llama reading's weights (tests/data/vllm_generic_fallback_oracle_v0.34.0.json).
        if all(k in text for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                                   "intermediate_size")):
            found = generic_fallback_refusal(text)
            if found:
                raise NotModelledError(_generic_refusal_text(where, str(mt), found))
            approximate = True
            reader_type = "generic"
        else:
            if mt is None:
                raise ConfigError(where, "model_type")
            raise ConfigError(where, "model_type", f"is {mt!r}, which vramcalc does not know, and the config "
                              "lacks the standard decoder fields")
    else:
        reader_type = mt
    if reader_type == "diffusion_gemma_text" and cfg.get("self_conditioning_size") not in (None, text.get(
            "intermediate_size")):
        raise NotModelledError(f"{where}: self_conditioning_size {cfg.get('self_conditioning_size')!r}: vLLM v0.34.0 "
                               "sizes DiffusionGemma's self-conditioning MLP by it, transformers by the text "
                               "intermediate_size; vramcalc does not model a checkpoint where they differ")
    f = Fields(text, "llama" if reader_type == "generic" else reader_type,
               f"{where}" + (" (text_config)" if text is not cfg else ""))
    parts = (_read_generic(f, str(mt)) if reader_type == "generic" else READERS[reader_type](f, reader_type))
    notes += parts.get("notes", [])
    approximate = approximate or parts.get("approximate", False)

    hidden = f.pos("hidden_size")
    vocab = f.pos("vocab_size")
    tie = parts["tie_word_embeddings"] if "tie_word_embeddings" in parts else _tied(cfg, text, f, outer_type, notes)
    raw_dtype = cfg.get("torch_dtype") or cfg.get("dtype") or text.get("torch_dtype") or text.get("dtype")
    dtype = DTYPES.get(str(raw_dtype).lower(), "bfloat16") if raw_dtype else "bfloat16"
    if not raw_dtype:
        notes.append("no torch_dtype in the config: bfloat16 assumed")
    rope = text.get("rope_scaling") or text.get("rope_parameters") or parts.get("rope_scaling")
    prf = rope.get("partial_rotary_factor") if isinstance(rope, dict) else None
    # the rotated share of each head (vLLM sizes its cos/sin cache by it): a fraction in (0, 1]
    if prf is not None and (isinstance(prf, bool) or not isinstance(prf, (int, float)) or not 0 < prf <= 1):
        raise ConfigError(where, "rope_scaling.partial_rotary_factor", f"must be a number in (0, 1], got {prf!r:.40}")
    vision = read_vision(cfg, hidden, where) if text is not cfg or outer_type in FLAT_COMPOSITES else None
    qc = cfg.get("quantization_config") or text.get("quantization_config")
    check_quant_config(qc, where)
    state = text.get("mamba_ssm_dtype") or text.get("mamba_ssm_cache_dtype")
    state_dtype = DTYPES.get(str(state).lower()) if state is not None else None
    if state is not None and state_dtype is None:
        raise ConfigError(where, "mamba_ssm_dtype", f"is not a dtype vramcalc knows, got {state!r:.40}")
    return ModelSpec(
        id=model_id,
        source=source,
        model_type=mt if isinstance(mt, str) else "unknown",
        architecture=arch,
        approximate=approximate,
        notes=tuple(notes),
        hidden_size=hidden,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        dtype=dtype,
        layers=tuple(parts["layers"]),
        norm_bias=parts.get("norm_bias", False),
        extra_tensors=tuple(parts.get("extra_tensors", ())),
        mtp_layers=parts.get("mtp_layers", 0),
        draft_vocab_size=f.opt_pos("draft_vocab_size"),
        ssm_state_dtype=state_dtype,
        max_position_embeddings=f.opt_int("max_position_embeddings", parts.get("max_position_embeddings")),
        rope_scaling=rope if isinstance(rope, dict) else None,
        vision=vision,
        quantization_config=qc if isinstance(qc, dict) else None,
        config=cfg,
    )


def read_config_file(path: str | Path, model_id: str | None = None) -> ModelSpec:
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(str(path), "(file)", "does not exist")
    try:
        cfg = bounded_json.read(path)
    except bounded_json.JSONFileError as e:  # the same error class as every other config problem
        raise ConfigError(str(path), "(file)", str(e).removeprefix(f"{path}: ")) from None
    hq = path.parent / "hf_quant_config.json"
    if isinstance(cfg, dict) and not cfg.get("quantization_config") and hq.is_file():
        try:
            cfg = with_modelopt_config(cfg, bounded_json.read(hq))
        except bounded_json.JSONFileError as e:
            raise ConfigError(str(hq), "(file)", str(e).removeprefix(f"{hq}: ")) from None
    return spec_from_config(cfg, model_id=model_id or str(path.parent), source=f"config:{path}", where=str(path))


def with_modelopt_config(cfg: dict[str, Any], hf_quant_config: Any) -> dict[str, Any]:
    """A ModelOpt export keeps its quantization in hf_quant_config.json; vLLM reads that file when
    config.json has no quantization_config (vllm/model_executor/model_loader/weight_utils.py
    get_quant_config; ModelOptNvFp4Config.get_config_filenames)."""
    if cfg.get("quantization_config") or not isinstance(hf_quant_config, dict):
        return cfg
    q = hf_quant_config.get("quantization")
    if not isinstance(q, dict):
        return cfg
    return {**cfg, "quantization_config": {"quant_method": "modelopt", **q}}
