"""GGUF metadata -> ModelSpec.

Keys are llama.cpp's (src/llama-arch.cpp LLM_KV_NAMES: "{arch}.block_count", ...); the sliding
pattern per architecture follows llama-model.cpp load_hparams (set_swa_pattern). Widths are read
from the tensors themselves where the metadata is silent (token_embd gives hidden and vocab).
"""

from __future__ import annotations

from typing import Any, Callable

from ..data_files import load
from ..data_models import GenericFallback
from ..errors import ConfigError, NotModelledError
from ..spec import AttentionSpec, LayerSpec, MLASpec, MLPSpec, ModelSpec, SSMSpec
from .gguf_header import GGUFError, GGUFHeader
from .validate import (MAX_CONTEXT, MAX_CONV, MAX_EXPERTS, MAX_HEAD_DIM, MAX_HEADS, MAX_LAYERS, MAX_RANK, MAX_STATE,
                       MAX_WIDTH, built, int_value)

# Reads one metadata key `{arch}.KEY` as an integer in [lo, hi]: (KEY, default, lo, hi) -> value.
Num = Callable[[str, Any, int, int], int]

# llama.cpp architectures read exactly; others fall back to a generic GQA decoder (approximate).
# swa: how llama-model.cpp marks sliding layers (set_swa_pattern(n): layer il slides if il % n < n-1)
ARCHS: dict[str, dict[str, Any]] = {
    "llama": {}, "eagle3": {}, "qwen2": {"qkv_bias": True}, "qwen3": {"qk_norm": True},
    # src/models/dflash.cpp: the Qwen3-style DFlash / DSpark drafter (attention with Q/K norms, a dense FFN)
    "dflash": {"qk_norm": True}, "qwen3moe": {"qk_norm": True},
    "phi3": {}, "gemma2": {"swa": 2, "norms": 4}, "gemma3": {"swa": 6, "norms": 4, "qk_norm": True},
    "gpt-oss": {"swa": 2, "sinks": True, "qkv_bias": True, "o_bias": True}, "deepseek2": {"mla": True},
    # recurrent and hybrid (which layers are recurrent: src/models/<arch>.cpp load_arch_hparams)
    "mamba": {"ssm": "mamba1", "recurrent": "all"}, "mamba2": {"ssm": "mamba2", "recurrent": "all"},
    "granitehybrid": {"ssm": "mamba2", "recurrent": "no_kv_heads"},
    "nemotron_h": {"ssm": "mamba2", "recurrent": "no_kv_heads_no_ffn"},
    "falcon-h1": {"ssm": "mamba2", "recurrent": "all", "parallel_attention": True},
    # nextn: {arch}.block_count counts the NextN / MTP blocks appended after the trunk ({arch}.nextn_predict_layers,
    # hparams.n_layer() = n_layer_all - n_layer_nextn, src/llama-hparams.cpp); the spec's layers are the trunk's and
    # mtp_layers the blocks (loaded only with --spec-type draft-mtp: src/models/qwen3next.cpp load_arch_tensors, 4df29be)
    "qwen3next": {"ssm": "gated_deltanet", "recurrent": "interval", "qk_norm": True, "output_gate": True,
                  "nextn": True},
    # Qwen3.5 / 3.6 (src/models/qwen35.cpp, qwen35moe.cpp load_arch_hparams): the same layout, the MTP block after
    # the trunk never recurrent
    "qwen35": {"ssm": "gated_deltanet", "recurrent": "interval", "qk_norm": True, "output_gate": True, "nextn": True},
    "qwen35moe": {"ssm": "gated_deltanet", "recurrent": "interval", "qk_norm": True, "output_gate": True,
                  "nextn": True},
}
MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe", "phi3": "phi3",
               "gemma2": "gemma2", "gemma3": "gemma3_text", "gpt-oss": "gpt_oss", "deepseek2": "deepseek_v3",
               "mamba": "mamba", "mamba2": "mamba2", "granitehybrid": "granitemoehybrid", "nemotron_h": "nemotron_h",
               "falcon-h1": "falcon_h1", "qwen3next": "qwen3_next",
               "qwen35": "qwen3_5_text", "qwen35moe": "qwen3_5_moe_text"}


def _ssm(kind: str, num: Num) -> SSMSpec:
    """llama.cpp's SSM keys (llama-arch.cpp LLM_KV_SSM_*). Qwen3-Next maps its Gated DeltaNet onto
    them (convert_hf_to_gguf.py Qwen3NextModel): inner_size = v heads x head dim, state_size = head
    dim, group_count = k heads, time_step_rank = v heads."""
    d_conv, d_inner = num("ssm.conv_kernel", 4, 1, MAX_CONV), num("ssm.inner_size", 0, 0, MAX_WIDTH)
    d_state, rank = num("ssm.state_size", 0, 0, MAX_STATE), num("ssm.time_step_rank", 0, 0, MAX_WIDTH)
    groups = num("ssm.group_count", 0, 0, MAX_HEADS)
    if kind == "mamba1":
        return SSMSpec(kind="mamba1", d_inner=d_inner, d_state=d_state, d_conv=d_conv, dt_rank=rank)
    if kind == "mamba2":
        return SSMSpec(kind="mamba2", d_inner=d_inner, d_state=d_state, d_conv=d_conv, n_heads=rank,
                       head_dim=d_inner // max(1, rank), n_groups=groups or 1)
    return SSMSpec(kind="gated_deltanet", d_conv=d_conv, num_k_heads=groups, num_v_heads=rank, head_k_dim=d_state,
                   head_v_dim=d_inner // max(1, rank), conv_bias=False)


def _is_recurrent(rule: str | None, i: int, kv_heads: list[int], ffn: list[int], num: Num) -> bool:
    if rule == "all":
        return True
    if rule == "no_kv_heads":  # granite-hybrid.cpp: recurrent iff head_count_kv(il) == 0
        return kv_heads[i] == 0
    if rule == "no_kv_heads_no_ffn":  # nemotron-h.cpp: no KV heads and no FFN
        return kv_heads[i] == 0 and ffn[i] == 0
    if rule == "interval":  # qwen3next.cpp: (il + 1) % full_attention_interval != 0
        return (i + 1) % (num("full_attention_interval", 4, 0, MAX_LAYERS) or 4) != 0
    return False


def _per_layer(value: Any, n: int, key: str, where: str, hi: int) -> list[int]:
    """A scalar or a per-layer array (llama.cpp's get_key_or_arr), each value an integer in 0..hi."""
    if isinstance(value, list):
        if len(value) != n:
            raise GGUFError(f"{where}: {key} lists {len(value)} values for {n} layers")
        return [int_value(v, where, f"{key}[{i}]", 0, hi) for i, v in enumerate(value)]
    if value is None:
        raise GGUFError(f"{where}: metadata {key} is missing")
    return [int_value(value, where, key, 0, hi)] * n


# The ModelSpec's names for the GGUF keys they come from ({arch} filled in), for check_spec's messages.
GGUF_NAMES = {
    "num_layers": "block_count", "num_heads": "attention.head_count", "num_kv_heads": "attention.head_count_kv",
    "head_dim_k": "attention.key_length", "head_dim_v": "attention.value_length",
    "window": "attention.sliding_window", "max_position_embeddings": "context_length",
    "intermediate_size": "feed_forward_length", "num_experts": "expert_count", "experts_per_token": "expert_used_count",
    "expert_intermediate_size": "expert_feed_forward_length", "kv_lora_rank": "attention.kv_lora_rank",
    "q_lora_rank": "attention.q_lora_rank", "qk_rope_head_dim": "rope.dimension_count",
    "qk_nope_head_dim": "attention.key_length_mla", "v_head_dim": "attention.value_length_mla",
    "ssm.d_conv": "ssm.conv_kernel", "ssm.d_inner": "ssm.inner_size", "ssm.d_state": "ssm.state_size",
    "ssm.dt_rank": "ssm.time_step_rank", "ssm.n_heads": "ssm.time_step_rank", "ssm.n_groups": "ssm.group_count",
    "ssm.num_k_heads": "ssm.group_count", "ssm.num_v_heads": "ssm.time_step_rank",
    "ssm.head_k_dim": "ssm.state_size", "ssm.head_v_dim": "ssm.inner_size", "ssm.head_dim": "ssm.inner_size",
}


# draft architectures whose token_embd is optional (src/models/dflash.cpp and src/models/eagle3.cpp load_arch_tensors
# at 4df29be: without it the drafter reads the target's, cparams.ctx_other): their width is {arch}.embedding_length
# and their vocabulary {arch}.vocab_size, else the tokenizer's token list (llama-vocab.cpp n_tokens)
EMBEDLESS_ARCHS = ("dflash", "eagle3")


def _embedless_widths(md: dict[str, Any], arch: str, where: str) -> tuple[int, int]:
    hidden = int_value(md.get(f"{arch}.embedding_length"), where, f"{arch}.embedding_length", 1, MAX_WIDTH)
    vocab = md.get(f"{arch}.vocab_size")
    if vocab is None:
        tokens = md.get("tokenizer.ggml.tokens")
        vocab = len(tokens) if isinstance(tokens, (list, tuple)) else \
            tokens.get("array_length") if isinstance(tokens, dict) else None
    if vocab is None:
        raise GGUFError(f"{where}: no token_embd.weight, {arch}.vocab_size nor tokenizer.ggml.tokens: the vocabulary "
                        "size is not in the file")
    return hidden, int_value(vocab, where, f"{arch}.vocab_size", 1, 1 << 24)


def spec_from_gguf(h: GGUFHeader, *, model_id: str, source: str, where: str) -> ModelSpec:
    """The ModelSpec of a GGUF's metadata and tensors, every size checked (validate.py)."""
    md = h.metadata
    arch = md.get("general.architecture")
    names = {k: f"{arch}.{v}" for k, v in GGUF_NAMES.items()}
    names.update(hidden_size="token_embd.weight (embedding width)", vocab_size="token_embd.weight (vocabulary)")
    return built(lambda: _spec_from_gguf(h, model_id=model_id, source=source, where=where), where, names)


def _refuse_unknown_arch(md: dict[str, Any], arch: str, tensors: dict[str, Any], kv_heads: list[int],
                         where: str) -> None:
    """An architecture vramcalc has no traits for is read as a generic decoder: weights from the file's tensors, KV
    as GQA over head_count_kv, no recurrent state, MoE only where {arch}.expert_count names the experts. Refused
    where the metadata shows what that reading would leave out or undercount (data/generic_fallback.json gguf):
    recurrent-state keys (ssm.*, wkv.*, shortconv.*), MLA or indexer keys (the cache layout and attention graph are
    the architecture's own), a layer without KV heads (a recurrent or FFN-only layer), expert tensors without an
    expert count (the MoE compute buffer sized as a dense FFN's)."""
    data = load("generic_fallback.json", GenericFallback).gguf
    found = [f"{arch}.{p}{'*' if p.endswith('.') else ''}" for p in data.key_prefixes
             if any(k.startswith(f"{arch}.{p}") for k in md)]
    if kv_heads and 0 in kv_heads:
        found.append(f"{arch}.attention.head_count_kv 0 at layer {kv_heads.index(0)} (a layer with no KV heads)")
    if any("_exps." in t for t in tensors) and not md.get(f"{arch}.expert_count"):
        found.append(f"expert tensors without {arch}.expert_count")
    if found:
        raise NotModelledError(
            f"{where}: llama.cpp architecture {arch!r} is not modelled: vramcalc has no traits for it, and its "
            f"metadata has {'; '.join(found)}, which a generic reading would leave out (too small a KV cache, "
            "recurrent state or compute buffer)")


def _spec_from_gguf(h: GGUFHeader, *, model_id: str, source: str, where: str) -> ModelSpec:
    md = h.metadata
    arch = md.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(f"{where}: no general.architecture in the GGUF metadata")
    tensors = {t.name: t for t in h.tensors}

    def key(k: str, default: Any = None) -> Any:
        return md.get(f"{arch}.{k}", default)

    def num(k: str, default: Any, lo: int, hi: int) -> int:
        """`{arch}.k` as an integer in lo..hi; `default` where the key is absent."""
        value = md.get(f"{arch}.{k}", default)
        if value is None:
            raise GGUFError(f"{where}: metadata {arch}.{k} is missing")
        return int_value(value, where, f"{arch}.{k}", lo, hi)

    def opt(k: str, lo: int, hi: int) -> int:
        """`{arch}.k` in lo..hi, or 0 where absent or 0 (llama.cpp's "not given")."""
        value = md.get(f"{arch}.{k}")
        return 0 if value is None or value == 0 and not isinstance(value, bool) else num(k, None, lo, hi)

    emb = tensors.get("token_embd.weight")
    if arch in EMBEDLESS_ARCHS and (emb is None or len(emb.ne) != 2):
        hidden, vocab = _embedless_widths(md, arch, where)
    elif emb is None or len(emb.ne) != 2:
        raise GGUFError(f"{where}: no 2-D token_embd.weight tensor")
    else:
        hidden, vocab = emb.ne
    n = key("block_count")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= MAX_LAYERS:
        raise GGUFError(f"{where}: {arch}.block_count is missing or not a layer count ({n!r:.40})")
    traits = ARCHS.get(arch)
    notes: list[str] = []
    if traits is None:
        traits = {}
        notes.append(f"llama.cpp architecture {arch!r} is read as a generic decoder: approximate")
    heads = _per_layer(key("attention.head_count", 0 if traits.get("ssm") else None), n,
                       f"{arch}.attention.head_count", where, MAX_HEADS)
    kv_heads = _per_layer(key("attention.head_count_kv", key("attention.head_count", 0 if traits.get("ssm") else None)),
                          n, f"{arch}.attention.head_count_kv", where, MAX_HEADS)
    if arch not in ARCHS:
        _refuse_unknown_arch(md, arch, tensors, kv_heads, where)
    ffn = key("feed_forward_length", 0)
    ffn = _per_layer(ffn, n, f"{arch}.feed_forward_length", where, MAX_WIDTH) if ffn else [0] * n
    window = opt("attention.sliding_window", 1, MAX_CONTEXT) or None
    swa = traits.get("swa")
    n_expert = opt("expert_count", 1, MAX_EXPERTS)
    leading_dense = opt("leading_dense_block_count", 0, MAX_LAYERS)
    n_mtp = opt("nextn_predict_layers", 1, n - 1) if traits.get("nextn") else 0
    layers = []
    for i in range(n - n_mtp):
        recurrent = _is_recurrent(traits.get("recurrent"), i, kv_heads, ffn, num)
        ssm = _ssm(traits["ssm"], num) if recurrent else None
        # nemotron-h.cpp: a layer with no KV heads that is not recurrent is an MLP-only layer
        mlp_only = traits.get("recurrent") == "no_kv_heads_no_ffn" and not recurrent and kv_heads[i] == 0
        no_attention = mlp_only or (recurrent and not traits.get("parallel_attention"))
        if not no_attention and heads[i] == 0:
            raise ConfigError(where, f"{arch}.attention.head_count", f"is 0 at layer {i}, an attention layer")
        attn: AttentionSpec | None
        if no_attention:
            attn = None
        elif traits.get("mla"):
            rope = num("rope.dimension_count", None, 1, MAX_HEAD_DIM)
            k_len = opt("attention.key_length_mla", 1, MAX_HEAD_DIM) or num("attention.key_length", None, 1, MAX_HEAD_DIM)
            v_len = opt("attention.value_length_mla", 1, MAX_HEAD_DIM) or num("attention.value_length", None, 1,
                                                                                MAX_HEAD_DIM)
            if k_len < rope:
                raise ConfigError(where, f"{arch}.attention.key_length", f"is {k_len:,}, less than "
                                  f"{arch}.rope.dimension_count {rope:,}")
            mla = MLASpec(kv_lora_rank=num("attention.kv_lora_rank", None, 1, MAX_RANK),
                          q_lora_rank=opt("attention.q_lora_rank", 1, MAX_RANK) or None,
                          qk_nope_head_dim=k_len - rope, qk_rope_head_dim=rope, v_head_dim=v_len,
                          gguf_mla_keys=opt("attention.key_length_mla", 1, MAX_HEAD_DIM) is not None)
            attn = AttentionSpec(kind="mla", num_heads=heads[i], num_kv_heads=heads[i], head_dim_k=k_len,
                                 head_dim_v=v_len, mla=mla)
        else:
            k_len = opt("attention.key_length", 1, MAX_HEAD_DIM) or hidden // heads[i]
            v_len = opt("attention.value_length", 1, MAX_HEAD_DIM) or k_len
            sliding = bool(swa and window and i % swa < swa - 1)
            attn = AttentionSpec(kind="sliding" if sliding else "full", num_heads=heads[i], num_kv_heads=kv_heads[i],
                                 head_dim_k=k_len, head_dim_v=v_len, window=window if sliding else None,
                                 sinks=traits.get("sinks", False), qkv_bias=traits.get("qkv_bias", False),
                                 o_bias=traits.get("o_bias", False), qk_norm=traits.get("qk_norm", False),
                                 output_gate=traits.get("output_gate", False))
        if n_expert and i >= leading_dense and f"blk.{i}.ffn_gate_inp.weight" in tensors:
            shared = opt("expert_shared_count", 1, MAX_EXPERTS)
            exp_ff = opt("expert_feed_forward_length", 1, MAX_WIDTH) or ffn[i]
            mlp = MLPSpec(kind="moe", num_experts=n_expert, experts_per_token=num("expert_used_count", None, 1, n_expert),
                          expert_intermediate_size=exp_ff,
                          shared_intermediate_size=shared * exp_ff or opt("expert_shared_feed_forward_length", 1,
                                                                          MAX_WIDTH),
                          expert_bias=f"blk.{i}.ffn_up_exps.bias" in tensors,
                          router_bias=f"blk.{i}.ffn_gate_inp.bias" in tensors,
                          router_score_bias=f"blk.{i}.exp_probs_b.bias" in tensors)
        elif ffn[i]:
            mlp = MLPSpec(kind="dense", intermediate_size=ffn[i])
        else:
            mlp = MLPSpec(kind="none")
        layers.append(LayerSpec(attention=attn, ssm=ssm, mlp=mlp, norms=traits.get("norms", 2)))
    ctx = opt("context_length", 1, MAX_CONTEXT) or None
    return ModelSpec(
        id=model_id, source=source, architecture=f"gguf:{arch}",
        # mamba with ssm.dt_b_c_rms is what convert_hf_to_gguf writes for FalconMambaForCausalLM
        model_type="falcon_mamba" if arch == "mamba" and key("ssm.dt_b_c_rms", False) else MODEL_TYPES.get(arch, arch),
        approximate=bool(notes), notes=tuple(notes + ["read from GGUF metadata; KV cache counted in f16, "
                                                      "llama.cpp's default cache type"]),
        hidden_size=hidden, vocab_size=vocab, tie_word_embeddings="output.weight" not in tensors, dtype="float16",
        layers=tuple(layers), max_position_embeddings=ctx, mtp_layers=n_mtp,
        quantization_config={"quant_method": "gguf", "file_type": md.get("general.file_type")},
    )
