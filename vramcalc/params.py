"""Parameter accounting: the weight tensors a ModelSpec implies, grouped, and the active count.

The inventory lists every weight tensor with its logical shape (experts stacked as one
(experts, out, in) tensor per projection, as transformers 5 holds them). Counts are checked
tensor-group by tensor-group against transformers' own modules instantiated on the meta device
(tools/param_oracle.py, tests/data/param_oracle.json).
"""

from __future__ import annotations

import re
from math import prod

from pydantic import BaseModel, ConfigDict

from .memo import Memo, layers_weight
from .spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec, SSMSpec, TensorSpec

GROUPS = (
    "embeddings",
    "lm_head",
    "attention",
    "dense_mlp",
    "routed_experts",
    "shared_experts",
    "router",
    "norms",
    "ssm",
    "vision",
    "mtp",
    "moe_latent",
)


# Checkpoint tensor name -> group, first match wins. Used for real checkpoints (safetensors
# headers) and by the transformers oracle (tools/param_oracle.py); quantization companions
# (scales, zero points, packed blocks) fall in their weight's group.
CHECKPOINT_GROUP_RULES = [
    (r"vision|visual|multi_modal_projector|embed_vision|mm_projector", "vision"),
    (r"\.fc[12]_latent_proj\.", "moe_latent"),  # NemotronHMoE's latent projections (before the mixer rule)
    (r"\.(input|post_attention|pre_feedforward|post_feedforward|pre_ff)_layernorm(_\d)?\.weight$", "norms"),
    (r"mixer\.(up|down)_proj", "dense_mlp"),
    (r"lm_head", "lm_head"),
    (r"embed_tokens|embeddings\.weight$|\.embeddings$|\.wte\.", "embeddings"),
    (r"shared_expert|shared_experts|shared_mlp", "shared_experts"),
    (r"\.experts\.", "routed_experts"),
    # (ERNIE-4.5-MoE's bias sits in mlp.gate.moe_statics, Hunyuan's router is mlp.gate.wg)
    (r"(mlp|mixer)\.gate\.(weight|wg\.weight|(moe_statics\.)?e_score_correction_bias)|router", "router"),
    (r"gate_up_proj_adapter|mlp_adapter", "dense_mlp"),
    # Gemma 4 per-layer inputs: each layer's gate and projection, and the model's projection into them
    (r"per_layer_(input_gate|projection|model_projection)\.weight$", "dense_mlp"),
    # DiffusionGemma's self-conditioning MLP (transformers models/diffusion_gemma DiffusionGemmaSelfConditioning)
    (r"self_conditioning\.(gate|up|down)_proj", "dense_mlp"),
    (r"self_attn|\.attention\.|\.linear\.weight$|mixer\.(q|k|v|o)_proj", "attention"),
    (r"mamba|linear_attn|mixer\.", "ssm"),
    (r"mlp|feed_forward", "dense_mlp"),
    (r"norm", "norms"),
]
_GROUP_RES = [(re.compile(p), g) for p, g in CHECKPOINT_GROUP_RULES]


def group_of(name: str) -> str:
    """The accounting group of a checkpoint tensor name ('other' when none matches)."""
    for pattern, group in _GROUP_RES:
        if pattern.search(name):
            return group
    return "other"


class ParamCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int  # every parameter of the model as transformers instantiates it (no MTP layers)
    active: int  # per text token: total less the vision tower and the unrouted experts
    by_group: dict[str, int]


def _t(out: list[TensorSpec], name: str, shape: tuple[int, ...], group: str, buffer: bool = False) -> None:
    out.append(TensorSpec(name=name, shape=shape, group=group, buffer=buffer))


def _linear(out: list[TensorSpec], name: str, n_out: int, n_in: int, group: str, bias: bool = False) -> None:
    _t(out, f"{name}.weight", (n_out, n_in), group)
    if bias:
        _t(out, f"{name}.bias", (n_out,), group)


def _attention(out: list[TensorSpec], p: str, a: AttentionSpec, hidden: int) -> None:
    g = "attention"
    if a.mla is not None:  # DeepseekV2Attention / DeepseekV3Attention
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        if m.q_lora_rank:
            _linear(out, f"{p}.q_a_proj", m.q_lora_rank, hidden, g)
            _t(out, f"{p}.q_a_layernorm.weight", (m.q_lora_rank,), g)
            _linear(out, f"{p}.q_b_proj", a.num_heads * qk, m.q_lora_rank, g)
        else:
            _linear(out, f"{p}.q_proj", a.num_heads * qk, hidden, g)
        _linear(out, f"{p}.kv_a_proj_with_mqa", m.kv_lora_rank + m.qk_rope_head_dim, hidden, g)
        _t(out, f"{p}.kv_a_layernorm.weight", (m.kv_lora_rank,), g)
        _linear(out, f"{p}.kv_b_proj", a.num_heads * (m.qk_nope_head_dim + m.v_head_dim), m.kv_lora_rank, g)
        _linear(out, f"{p}.o_proj", hidden, a.num_heads * m.v_head_dim, g)
        if m.index_n_heads:  # DeepseekV32Indexer (sparse attention, DSA)
            _linear(out, f"{p}.indexer.wq_b", m.index_n_heads * m.index_head_dim, m.q_lora_rank or hidden, g)
            _linear(out, f"{p}.indexer.wk", m.index_head_dim, hidden, g)
            _t(out, f"{p}.indexer.k_norm.weight", (m.index_head_dim,), g)
            _t(out, f"{p}.indexer.k_norm.bias", (m.index_head_dim,), g)
            _linear(out, f"{p}.indexer.weights_proj", m.index_n_heads, hidden, g)
        return
    d_in = a.input_size or hidden
    q_out = a.num_heads * a.head_dim_k * (2 if a.output_gate else 1)
    # A layer that reuses an earlier layer's KV has no K/V projections of its own
    # (transformers Gemma4TextAttention: k_proj, v_proj, k_norm only when not is_kv_shared_layer).
    own_kv = a.kv_shared_from is None
    _linear(out, f"{p}.q_proj", q_out, d_in, g, a.qkv_bias)
    if own_kv:
        _linear(out, f"{p}.k_proj", a.num_kv_heads * a.head_dim_k, d_in, g, a.qkv_bias)
    if own_kv and not a.k_eq_v:
        _linear(out, f"{p}.v_proj", a.num_kv_heads * a.head_dim_v, d_in, g, a.qkv_bias)
    _linear(out, f"{p}.o_proj", hidden, a.num_heads * a.head_dim_v, g, a.o_bias)
    if a.qk_norm:
        q_heads, k_heads = (a.num_heads, a.num_kv_heads) if a.qk_norm_full else (1, 1)
        _t(out, f"{p}.q_norm.weight", (q_heads * a.head_dim_k,), g)
        if own_kv:
            _t(out, f"{p}.k_norm.weight", (k_heads * a.head_dim_k,), g)
    if a.sinks:
        _t(out, f"{p}.sinks", (a.num_heads,), g)
    if a.index_n_heads:  # MiniMax-M3's lightning indexer (vLLM v0.34.0 models/minimax_m3 MiniMaxM3SparseAttention)
        _linear(out, f"{p}.index_q_proj", a.index_n_heads * a.index_head_dim, d_in, g)
        _linear(out, f"{p}.index_k_proj", a.index_head_dim, d_in, g)
        _t(out, f"{p}.index_q_norm.weight", (a.index_head_dim,), g)
        _t(out, f"{p}.index_k_norm.weight", (a.index_head_dim,), g)


def _ssm(out: list[TensorSpec], p: str, s: SSMSpec, hidden: int) -> None:
    g = "ssm"
    if s.kind == "kda":  # KimiGatedDeltaNetAttention (vLLM v0.34.0 kimi_gdn_linear_attn.py), low-rank gate
        n, d = s.num_v_heads, s.head_v_dim
        _linear(out, f"{p}.in_proj_qkv", 3 * n * d, hidden, g)  # in_proj_qkvgfab: q, k, v, then b and f_a
        _linear(out, f"{p}.b_proj", n, hidden, g)
        _linear(out, f"{p}.f_a_proj", d, hidden, g)
        _linear(out, f"{p}.f_b_proj", n * d, d, g)
        _linear(out, f"{p}.g_a_proj", d, hidden, g)
        _linear(out, f"{p}.g_b_proj", n * d, d, g)
        _t(out, f"{p}.conv1d.weight", (s.conv_channels, 1, s.d_conv), g)
        _t(out, f"{p}.dt_bias", (n * d,), g)
        _t(out, f"{p}.A_log", (n,), g)
        _t(out, f"{p}.o_norm.weight", (d,), g)
        _linear(out, f"{p}.out_proj", hidden, n * d, g)
        return
    if s.kind == "gated_deltanet":  # Qwen3NextGatedDeltaNet (Qwen3.5 splits in_proj, same sizes)
        qkvz = 2 * s.num_k_heads * s.head_k_dim + 2 * s.num_v_heads * s.head_v_dim
        _linear(out, f"{p}.in_proj_qkvz", qkvz, hidden, g)
        _linear(out, f"{p}.in_proj_ba", 2 * s.num_v_heads, hidden, g)
        _t(out, f"{p}.conv1d.weight", (s.conv_channels, 1, s.d_conv), g)
        _t(out, f"{p}.dt_bias", (s.num_v_heads,), g)
        _t(out, f"{p}.A_log", (s.num_v_heads,), g)
        _t(out, f"{p}.norm.weight", (s.head_v_dim,), g)
        _linear(out, f"{p}.out_proj", hidden, s.num_v_heads * s.head_v_dim, g)
        return
    d = s.d_inner
    if s.kind == "short_conv":  # Lfm2ShortConv: in_proj to B, C and x, a depthwise conv, out_proj
        _linear(out, f"{p}.in_proj", 3 * d, hidden, g, s.proj_bias)
        _t(out, f"{p}.conv1d.weight", (d, 1, s.d_conv), g)
        if s.conv_bias:
            _t(out, f"{p}.conv1d.bias", (d,), g)
        _linear(out, f"{p}.out_proj", hidden, d, g, s.proj_bias)
        return
    if s.kind == "mamba1":  # MambaMixer / FalconMambaMixer / JambaMambaMixer
        _linear(out, f"{p}.in_proj", 2 * d, hidden, g, s.proj_bias)
        _t(out, f"{p}.conv1d.weight", (d, 1, s.d_conv), g)
        if s.conv_bias:
            _t(out, f"{p}.conv1d.bias", (d,), g)
        _linear(out, f"{p}.x_proj", s.dt_rank + 2 * s.d_state, d, g)
        _linear(out, f"{p}.dt_proj", d, s.dt_rank, g, bias=True)
        _t(out, f"{p}.A_log", (d, s.d_state), g)
        _t(out, f"{p}.D", (d,), g)
        if s.bcdt_norms:
            _t(out, f"{p}.dt_layernorm.weight", (s.dt_rank,), g)
            _t(out, f"{p}.b_layernorm.weight", (s.d_state,), g)
            _t(out, f"{p}.c_layernorm.weight", (s.d_state,), g)
        _linear(out, f"{p}.out_proj", hidden, d, g, s.proj_bias)
        return
    # Mamba2Mixer: in_proj emits z, x, B, C and dt
    _linear(out, f"{p}.in_proj", 2 * d + 2 * s.n_groups * s.d_state + s.n_heads, hidden, g, s.proj_bias)
    _t(out, f"{p}.conv1d.weight", (s.conv_channels, 1, s.d_conv), g)
    if s.conv_bias:
        _t(out, f"{p}.conv1d.bias", (s.conv_channels,), g)
    _t(out, f"{p}.dt_bias", (s.n_heads,), g)
    _t(out, f"{p}.A_log", (s.n_heads,), g)
    _t(out, f"{p}.D", (s.n_heads,), g)
    if s.gated_norm:
        _t(out, f"{p}.norm.weight", (d,), g)
    _linear(out, f"{p}.out_proj", hidden, d, g, s.proj_bias)


def _mlp(out: list[TensorSpec], p: str, m: MLPSpec, hidden: int) -> None:
    if m.intermediate_size and m.kind in ("dense", "moe"):  # dense MLP, or Gemma 4's dense branch
        i = m.intermediate_size
        if m.gated:
            _linear(out, f"{p}.gate_proj", i, hidden, "dense_mlp", m.bias)
        _linear(out, f"{p}.up_proj", i, hidden, "dense_mlp", m.bias)
        _linear(out, f"{p}.down_proj", hidden, i, "dense_mlp", m.bias)
    if m.kind != "moe":
        return
    e, i = m.num_experts, m.expert_intermediate_size
    _linear(out, f"{p}.router", e, hidden, "router", m.router_bias)  # routes on the hidden state, latent or not
    if m.expert_input_size:  # NemotronHMoE (transformers 5.24 modeling_nemotron_h.py): experts in the latent space
        _linear(out, f"{p}.fc1_latent_proj", m.expert_input_size, hidden, "moe_latent", m.bias)
        _linear(out, f"{p}.fc2_latent_proj", hidden, m.expert_input_size, "moe_latent", m.bias)
    d = m.expert_input_size or hidden
    if m.router_score_bias:  # DeepseekV3TopkRouter / Glm4MoeTopkRouter register_buffer
        # (transformers 5.24 Ernie4_5_MoeStatics: an nn.Parameter)
        _t(out, f"{p}.router.e_score_correction_bias", (e,), "router", buffer=not m.router_score_bias_param)
    if m.router_scales:  # Gemma4TextRouter
        _t(out, f"{p}.router.scale", (hidden,), "router")
        _t(out, f"{p}.router.per_expert_scale", (e,), "router")
    if m.gated:
        _t(out, f"{p}.experts.gate_up_proj", (e, 2 * i, d), "routed_experts")
    else:  # NemotronHMoE: relu2 experts, up and down only
        _t(out, f"{p}.experts.up_proj", (e, i, d), "routed_experts")
    _t(out, f"{p}.experts.down_proj", (e, d, i), "routed_experts")
    if m.expert_bias:
        _t(out, f"{p}.experts.gate_up_proj_bias", (e, 2 * i), "routed_experts")
        _t(out, f"{p}.experts.down_proj_bias", (e, d), "routed_experts")
    if m.shared_intermediate_size:
        s = m.shared_intermediate_size
        if m.gated:
            _linear(out, f"{p}.shared_expert.gate_proj", s, hidden, "shared_experts")
        _linear(out, f"{p}.shared_expert.up_proj", s, hidden, "shared_experts")
        _linear(out, f"{p}.shared_expert.down_proj", hidden, s, "shared_experts")
        if m.shared_expert_gate:
            _linear(out, f"{p}.shared_expert_gate", 1, hidden, "shared_experts")


def _layer(out: list[TensorSpec], i: int, layer: LayerSpec, spec: ModelSpec) -> None:
    p = f"model.layers.{i}"
    h = spec.hidden_size
    if layer.attention is not None and not layer.attention_weights_shared:
        _attention(out, f"{p}.self_attn", layer.attention, h)
    if layer.ssm is not None:
        _ssm(out, f"{p}.{'kda' if layer.ssm.kind == 'kda' else 'mamba'}", layer.ssm, h)
    _mlp(out, f"{p}.mlp", layer.mlp, h)
    for n in range(layer.norms):
        _t(out, f"{p}.norm_{n}.weight", (h,), "norms")
        if spec.norm_bias:
            _t(out, f"{p}.norm_{n}.bias", (h,), "norms")


def _mtp(out: list[TensorSpec], spec: ModelSpec) -> None:
    """DeepSeek-V3-style multi-token-prediction layers (DeepSeek-V3 README, "MTP modules"): a
    decoder layer after the last, with its own embedding and head copies, enorm, hnorm and
    eh_proj (2h -> h). Checked against DeepSeek-V3.2's stored element count."""
    h, n = spec.hidden_size, spec.num_layers
    for j in range(spec.mtp_layers):
        i = n + j
        start = len(out)
        _layer(out, i, spec.layers[-1], spec)
        p = f"model.layers.{i}"
        _t(out, f"{p}.embed_tokens.weight", (spec.vocab_size, h), "mtp")
        _t(out, f"{p}.enorm.weight", (h,), "mtp")
        _t(out, f"{p}.hnorm.weight", (h,), "mtp")
        _t(out, f"{p}.eh_proj.weight", (h, 2 * h), "mtp")
        _t(out, f"{p}.shared_head.norm.weight", (h,), "mtp")
        _t(out, f"{p}.shared_head.head.weight", (spec.vocab_size, h), "mtp")
        for k in range(start, len(out)):
            out[k] = out[k].model_copy(update={"group": "mtp"})


# The planner and the engine models ask for the same spec's inventory many times. Keyed by the
# spec's identity (specs are frozen); the entry holds the spec so its id cannot be reused. Bounded by
# the layers held (memo.py), not by a count.
_MEMO: Memo[tuple[ModelSpec, tuple[TensorSpec, ...]]] = Memo()


def inventory(spec: ModelSpec, include_mtp: bool = False) -> list[TensorSpec]:
    """Every weight tensor of the model (vision tower as one lumped entry). MTP layers are in the
    checkpoint but neither instantiated by transformers nor loaded by vLLM by default."""
    hit = _MEMO.get((id(spec), include_mtp))
    if hit is not None and hit[0] is spec:
        return list(hit[1])
    out = _inventory(spec, include_mtp)
    _MEMO.put((id(spec), include_mtp), (spec, tuple(out)), layers_weight(len(spec.layers)))
    return out


def _inventory(spec: ModelSpec, include_mtp: bool) -> list[TensorSpec]:
    out: list[TensorSpec] = []
    h = spec.hidden_size
    _t(out, "model.embed_tokens.weight", (spec.vocab_size, h), "embeddings")
    for i, layer in enumerate(spec.layers):
        _layer(out, i, layer, spec)
    out.extend(spec.extra_tensors)
    for n in range(spec.final_norm):
        _t(out, f"model.norm_{n}.weight", (h,), "norms")
    if not spec.tie_word_embeddings:
        _t(out, "lm_head.weight", (spec.vocab_size, h), "lm_head")
    if spec.vision is not None:
        _t(out, "vision_tower", (spec.vision.params,), "vision")
    if include_mtp and spec.mtp_layers and spec.model_type in ("deepseek_v3", "deepseek_v32"):
        _mtp(out, spec)
    return out


def count_params(spec: ModelSpec) -> ParamCounts:
    by_group = dict.fromkeys(GROUPS, 0)
    for t in inventory(spec):
        if not t.buffer:
            by_group[t.group] += prod(t.shape)
    total = sum(by_group.values())
    # Experts not routed to: each MoE layer activates experts_per_token of num_experts.
    inactive = 0
    for layer in spec.layers:
        m = layer.mlp
        if m.kind == "moe":
            d = m.expert_input_size or spec.hidden_size
            per_expert = (3 if m.gated else 2) * d * m.expert_intermediate_size
            if m.expert_bias:
                per_expert += 2 * m.expert_intermediate_size + d
            inactive += (m.num_experts - m.experts_per_token) * per_expert
    active = total - by_group["vision"] - inactive
    return ParamCounts(total=total, active=active, by_group=by_group)
