"""Every number a model source gives is checked before memory is sized from it.

Each reader checks its raw values first (type, sign, range) so that an error names the source's own
field (`num_key_value_heads` in a config.json, `llama.attention.head_count_kv` in a GGUF); then
`check_spec` checks the ModelSpec it built, once for every source, for what only the whole spec
shows (KV heads dividing heads, experts used within experts, sizes in range after arithmetic).
A value that fails raises ConfigError naming the file, the field and the value, on one line.

The bounds are generous real-world limits: no released model comes near them, and each names why.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from pydantic import ValidationError

from ..limits import MAX_CONTEXT
from ..errors import ConfigError
from ..spec import AttentionSpec, MLPSpec, ModelSpec, SSMSpec

# Layers: the deepest released decoders have about 130 (Llama-3.1-405B: 126); 1024 is 8x that.
MAX_LAYERS = 1024
# Hidden width: the widest released models use up to about 20,480 (Llama-3.1-405B: 16,384); 2^17 is 6x that.
MAX_HIDDEN = 2**17
# MLP / expert / SSM inner widths: the widest are ~73,728 (Nemotron-4-340B); 2^20 is 14x that.
MAX_WIDTH = 2**20
# Attention heads (query, KV, SSM): the most are 128 (DeepSeek-V3); 2^14 bounds any split of MAX_HIDDEN.
MAX_HEADS = 2**14
# One head's size: the largest are 512 (Gemma 4 global layers, MLA latent ranks); 2^13 leaves room.
MAX_HEAD_DIM = 2**13
# Context / sliding window in tokens: the longest claimed context is 10M (Llama 4 Scout); limits.MAX_CONTEXT (2^24 =
# 16.7M) is the same bound as on --ctx.
# Vocabulary: the largest are ~262,144 (Gemma 3); 2^22 is 16x that.
MAX_VOCAB = 2**22
# Routed experts: the most in a release are 384 (Kimi-K2); 2^16 leaves room for any real router.
MAX_EXPERTS = 2**16
# Low-rank projections (MLA q/kv ranks, LoRA adapters): real ranks are up to 1,536; widths bound them.
MAX_RANK = MAX_WIDTH
# SSM state and convolution sizes: real d_state is 16-256 and d_conv 4; 2^16 and 2^10 leave room.
MAX_STATE = 2**16
MAX_CONV = 2**10


def int_value(value: Any, where: str, field: str, lo: int = 1, hi: int = MAX_WIDTH) -> int:
    """`value` as an integer in [lo, hi], or ConfigError naming `field` and the value. A bool is not
    an integer, and neither is a float (even 4096.0) or a string of digits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, field, f"must be an integer, got {value!r:.40}")
    _in_range(where, field, value, lo, hi)
    return value


def _names(names: Mapping[str, str], key: str) -> str:
    return names.get(key, key)


def _in_range(where: str, field: str, value: int | None, lo: int, hi: int, layer: int | None = None) -> None:
    """ConfigError naming `where`, `field` (already in the source's spelling) and the value when it is outside lo..hi."""
    if value is not None and not lo <= value <= hi:
        at = "" if layer is None else f" at layer {layer}"
        raise ConfigError(where, field, f"is {value:,}{at}, outside {lo:,}..{hi:,} (no real model is outside it)")


def _check_attention(a: AttentionSpec, i: int, where: str, names: Mapping[str, str]) -> None:
    def check(field: str, value: int | None, lo: int, hi: int) -> None:
        _in_range(where, _names(names, field), value, lo, hi, i)

    check("num_heads", a.num_heads, 1, MAX_HEADS)
    check("num_kv_heads", a.num_kv_heads, 1, MAX_HEADS)
    check("head_dim_k", a.head_dim_k, 1, MAX_HEAD_DIM)
    check("head_dim_v", a.head_dim_v, 1, MAX_HEAD_DIM)
    check("window", a.window, 1, MAX_CONTEXT)
    check("input_size", a.input_size, 1, 2 * MAX_HIDDEN)
    # vLLM and llama.cpp both share each KV head among a whole number of query heads
    # (vLLM: num_heads % num_kv_heads == 0 in its attention layers; ggml's broadcast needs the same).
    if a.num_heads % a.num_kv_heads:
        raise ConfigError(where, _names(names, "num_kv_heads"), f"is {a.num_kv_heads:,} at layer {i}, which does "
                          f"not divide the {a.num_heads:,} attention heads")
    if a.mla is not None:
        m = a.mla
        check("kv_lora_rank", m.kv_lora_rank, 1, MAX_RANK)
        check("q_lora_rank", m.q_lora_rank, 1, MAX_RANK)
        check("qk_nope_head_dim", m.qk_nope_head_dim, 0, MAX_HEAD_DIM)
        check("qk_rope_head_dim", m.qk_rope_head_dim, 1, MAX_HEAD_DIM)
        check("v_head_dim", m.v_head_dim, 1, MAX_HEAD_DIM)
        check("index_n_heads", m.index_n_heads, 0, MAX_HEADS)
        check("index_head_dim", m.index_head_dim, 0, MAX_HEAD_DIM)


def _check_ssm(s: SSMSpec, i: int, where: str, names: Mapping[str, str]) -> None:
    def check(field: str, value: int, lo: int, hi: int) -> None:
        _in_range(where, _names(names, f"ssm.{field}"), value, lo, hi, i)

    check("d_conv", s.d_conv, 1, MAX_CONV)
    if s.kind in ("mamba1", "mamba2"):
        check("d_inner", s.d_inner, 1, MAX_WIDTH)
        check("d_state", s.d_state, 1, MAX_STATE)
    if s.kind == "mamba1":
        check("dt_rank", s.dt_rank, 1, MAX_RANK)
    if s.kind == "mamba2":
        check("n_heads", s.n_heads, 1, MAX_HEADS)
        check("head_dim", s.head_dim, 1, MAX_WIDTH)
        check("n_groups", s.n_groups, 1, MAX_HEADS)
    if s.kind in ("gated_deltanet", "kda"):
        check("num_k_heads", s.num_k_heads, 1, MAX_HEADS)
        check("num_v_heads", s.num_v_heads, 1, MAX_HEADS)
        check("head_k_dim", s.head_k_dim, 1, MAX_HEAD_DIM)
        check("head_v_dim", s.head_v_dim, 1, MAX_HEAD_DIM)


def _check_mlp(m: MLPSpec, i: int, where: str, names: Mapping[str, str]) -> None:
    def check(field: str, value: int, lo: int, hi: int) -> None:
        _in_range(where, _names(names, field), value, lo, hi, i)

    check("intermediate_size", m.intermediate_size, 1 if m.kind == "dense" else 0, MAX_WIDTH)
    check("shared_intermediate_size", m.shared_intermediate_size, 0, MAX_WIDTH)
    if m.kind == "moe":
        check("num_experts", m.num_experts, 1, MAX_EXPERTS)
        if not 1 <= m.experts_per_token <= m.num_experts:  # a router picks at least one of its experts
            raise ConfigError(where, _names(names, "experts_per_token"), f"is {m.experts_per_token:,} at layer {i}: "
                              f"each token uses 1 to the {m.num_experts:,} experts")
        check("expert_intermediate_size", m.expert_intermediate_size, 1, MAX_WIDTH)


def check_spec(spec: ModelSpec, where: str, names: Mapping[str, str] | None = None) -> ModelSpec:
    """`spec` if every size in it is in range and consistent; else ConfigError naming `where` and the
    field, under the source's own name when `names` maps the spec's name to it."""
    names = names or {}

    def top(field: str, value: int | None, lo: int, hi: int) -> None:
        _in_range(where, _names(names, field), value, lo, hi)

    top("num_layers", spec.num_layers, 1, MAX_LAYERS)
    top("hidden_size", spec.hidden_size, 1, MAX_HIDDEN)
    top("vocab_size", spec.vocab_size, 1, MAX_VOCAB)
    top("max_position_embeddings", spec.max_position_embeddings, 1, MAX_CONTEXT)
    top("mtp_layers", spec.mtp_layers, 0, MAX_LAYERS)
    for i, layer in enumerate(spec.layers):
        if layer.attention is not None:
            _check_attention(layer.attention, i, where, names)
        if layer.ssm is not None:
            _check_ssm(layer.ssm, i, where, names)
        _check_mlp(layer.mlp, i, where, names)
    for t in spec.extra_tensors:
        if not t.shape or any(not 1 <= d <= 2 * MAX_WIDTH for d in t.shape):
            raise ConfigError(where, t.name, f"has shape {t.shape}, a dimension outside 1..{2 * MAX_WIDTH:,}")
    if spec.vision is not None:
        top("vision_config.hidden_size", spec.vision.hidden_size, 1, MAX_HIDDEN)
        top("vision_config.num_hidden_layers", spec.vision.num_layers, 1, MAX_LAYERS)
        top("vision_config (parameters)", spec.vision.params, 1, 2**40)
    return spec


def built(build: Callable[[], ModelSpec], where: str, names: Mapping[str, str] | None = None) -> ModelSpec:
    """The spec `build` makes, checked by check_spec. A value the spec's own constraints refuse (a
    type it cannot hold, a negative size) is refused like any other, naming the field."""
    names = names or {}
    try:
        spec = build()
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"] if not isinstance(x, int)]
        field = _names(names, loc[-1]) if loc else "(top level)"
        raise ConfigError(where, field, f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {err.get('input')!r:.40}") \
            from None
    return check_spec(spec, where, names)
