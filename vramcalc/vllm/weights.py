"""Weight bytes per GPU as vLLM places them under tensor and pipeline parallelism.

Rules (docs/vllm.md#weights; each names the vLLM v0.33.0 source it follows):
- ColumnParallelLinear (q, gate/up, MLA q_b/kv_b, experts w13) splits its output rows over TP;
  RowParallelLinear (o, down, experts w2) splits its input columns; row-parallel biases are whole.
- QKVParallelLinear: k/v hold max(1, kv_heads / TP) heads per rank (replicated when TP > kv_heads).
- ReplicatedLinear (MLA q_a / kv_a, the V3.2 indexer), MoE routers and all norms are whole on
  every rank.
- VocabParallelEmbedding / ParallelLMHead: the vocab padded to a multiple of 64, then / TP.
- PP (vllm/distributed/utils.py get_pp_indices): floor(N / PP) layers per stage, one more on each
  of the N mod PP stages just before the last; embeddings on the first stage, final norm and
  lm_head on the last, and a tied head allocates the embedding again there when PP > 1.
- One rotary cos_sin_cache per rope config, max_position x rotary_dim in the model dtype (the DSA indexer's rope
  is a second config unless indexer_rope_interleave).
"""

from __future__ import annotations

import re
from math import ceil, prod
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data_files import load
from ..data_models import Vllm
from ..errors import InputError
from ..kv import dtype_bytes
from ..memo import Memo, layers_weight
from ..params import inventory
from ..quant import (QuantScheme, _matrices, left_unquantized, matrix_tensors,
                     scheme_from_config)
from ..spec import LayerSpec, ModelSpec, TensorSpec


def vllm_rules() -> Vllm:
    """data/vllm.json, typed."""
    return load("vllm.json", Vllm)


def pp_layer_split(n_layers: int, pp: int, partition: tuple[int, ...] | None = None) -> list[int]:
    """Layers per pipeline stage (vLLM 0.33.0 vllm/distributed/utils.py get_pp_indices): VLLM_PP_LAYER_PARTITION
    when given (as many stages as PP, summing to the layers), else the even split with the remainder on the
    stages before the last."""
    if pp <= 0 or pp > n_layers:
        raise InputError(f"--pipeline-parallel-size {pp} must be between 1 and the {n_layers} layers")
    if partition is not None:
        if len(partition) != pp:
            raise InputError(f"VLLM_PP_LAYER_PARTITION: len(partitions)={len(partition)} does not match "
                             f"pp_size={pp}.")
        if sum(partition) != n_layers:
            raise InputError(f"VLLM_PP_LAYER_PARTITION: sum(partitions)={sum(partition)} does not match "
                             f"num_hidden_layers={n_layers}.")
        return list(partition)
    parts = [n_layers // pp] * pp
    for i in range(n_layers % pp):
        parts[-(i + 2)] += 1
    return parts


def padded_vocab(vocab: int) -> int:
    pad = vllm_rules().vocab_padding.value
    return ceil(vocab / pad) * pad


COLUMN = re.compile(r"\.(q_proj|q_b_proj|kv_b_proj|gate_proj|up_proj|in_proj\w*|experts\.gate_up_proj)(\.weight|\.bias)?$"
                    r"|experts\.gate_up_proj_bias$")
ROW = re.compile(r"\.(o_proj|down_proj|out_proj)\.weight$")
KV = re.compile(r"\.(k_proj|v_proj)\.(weight|bias)$")
KDA_SHARDED = re.compile(r"\.kda\.((b|f_b|g_b)_proj\.weight|conv1d\.weight|dt_bias|A_log)$")
SHARDED_1D = re.compile(r"\.mamba\.(dt_bias|A_log|D|norm\.weight|conv1d\.(weight|bias))$|\.self_attn\.sinks$")


def _rank_shape(t: TensorSpec, spec: ModelSpec, tp: int, layer: LayerSpec | None, moe: "MoEShards | None" = None,
                q_group: int = 1, replicate_embed: bool = False, kv_colwise: bool = False) -> tuple[int, ...]:
    """The shape of tensor t on one TP rank (routed experts: over `moe`'s ranks, see MoEShards). q_group: the DCP
    group --dcp-q-replicate holds the MLA query projection whole within (1: off); replicate_embed: VLLM_REPLICATE_EMBED
    (see sharding_switches); kv_colwise: the Transformers backend, whose k/v projections split by column like any other
    (and whose attention is whole where the model's tp_plan names none: data/vllm.json transformers_backend_default)."""
    s = list(t.shape)
    name = t.name
    if replicate_embed and name == "model.embed_tokens.weight":
        return (padded_vocab(s[0]), s[1])  # VocabParallelEmbedding(disable_tp=True): padded, whole on the rank
    if q_group > 1 and layer is not None and layer.attention is not None and layer.attention.mla is not None \
            and re.search(r"\.self_attn\.(q_proj|q_b_proj)\.weight$", name):
        return (s[0] // (tp // q_group), *s[1:])  # DCPGroupColumnParallelLinear: tp_size = TP // DCP
    if moe is not None and t.group == "routed_experts" and (moe.ep > 1 or moe.tp != tp):
        if moe.ep > 1:  # whole experts, ceil((E + redundant) / EP) on the first ranks (determine_expert_map)
            return (-(-(s[0] + moe.redundant) // moe.ep), *s[1:])
        tp = moe.tp  # the experts' intermediate split over TP x DP ranks
    # embed_tokens_per_layer: Gemma-4's per-layer embeddings, a VocabParallelEmbedding (vLLM 0.30.0
    # vllm/model_executor/models/gemma4.py Gemma4Model.__init__)
    if name.endswith(("embed_tokens.weight", "embed_tokens_per_layer.weight")) or name == "lm_head.weight" \
            or name.endswith("shared_head.head.weight"):
        return (padded_vocab(s[0]) // tp, s[1])
    # fc1/fc2_latent_proj: ReplicatedLinear, whole on every rank (v0.33.0 models/nemotron_h.py NemotronHMoE)
    # DiffusionGemma's self-conditioning MLP: plain nn.Linear, whole on every rank (v0.34.0
    # models/diffusion_gemma.py DiffusionGemmaSelfConditioning)
    if "router" in name or "shared_expert_gate" in name or t.group in ("norms", "moe_latent") or "layernorm" in name \
            or ".self_conditioning." in name \
            or name.endswith(("q_norm.weight", "k_norm.weight")) or ".indexer." in name \
            or re.search(r"\.(q_a_proj|kv_a_proj_with_mqa)\.", name):
        return tuple(s)
    if kv_colwise and t.group == "attention" and \
            spec.architecture in vllm_rules().transformers_backend_default.replicated_attention:
        return tuple(s)  # no tp_plan entry: the Transformers backend's ReplicatedLinear (data/vllm.json)
    # Kimi delta attention (vLLM v0.34.0 kimi_gdn_linear_attn.py KimiGatedDeltaNetAttention.__init__): b, f_b, g_b,
    # the conv, dt_bias and A_log shard over TP with the heads; f_a and g_a (ReplicatedLinear) and o_norm stay whole
    if KDA_SHARDED.search(name):
        return (s[0] // tp, *s[1:])
    ssm = layer.ssm if layer is not None and ".mamba." in name else None
    if ssm is not None and ssm.kind == "mamba1":
        # vLLM v0.33.0 vllm/model_executor/layers/mamba/mamba_mixer.py MambaMixer.__init__: x_proj is a
        # RowParallelLinear over d_inner, dt_proj a ColumnParallelLinear (weight and bias) onto d_inner
        if name.endswith(".x_proj.weight"):
            return (s[0], s[1] // tp)
        if re.search(r"\.dt_proj\.(weight|bias)$", name):
            return (s[0] // tp, *s[1:])
    if ssm is not None and ssm.kind == "mamba2" and re.search(r"\.(in_proj\.weight|conv1d\.(weight|bias))$", name):
        # mamba_mixer2.py MambaMixer2.__init__: B and C groups shard over TP when TP divides n_groups; a
        # single group is replicated on every rank (extra_groups_for_head_shards), so each rank holds
        # d_inner / TP of x and z, n_groups / TP (or 1) groups of B and C, n_heads / TP of dt
        groups = ssm.n_groups // tp if ssm.n_groups % tp == 0 else 1
        bc = 2 * groups * ssm.d_state
        if name.endswith("in_proj.weight"):
            return (2 * ssm.d_inner // tp + bc + ssm.n_heads // tp, *s[1:])
        return (ssm.d_inner // tp + bc, *s[1:])
    # MiniMax-M3's indexer in MinimaxM3QKVParallelLinearWithIndexer (vLLM v0.34.0
    # vllm/model_executor/layers/linear.py): index_q shards as the KV heads (whole heads, replicated past them),
    # the one index_k head is whole on every rank; its norms are per head (kept whole above)
    if name.endswith(".index_k_proj.weight") or name.endswith(("index_q_norm.weight", "index_k_norm.weight")):
        return tuple(s)
    if name.endswith(".index_q_proj.weight") and layer is not None and layer.attention is not None:
        a = layer.attention
        return (max(1, a.index_n_heads // tp) * a.index_head_dim, *s[1:])
    if KV.search(name) and layer is not None and layer.attention is not None:
        a = layer.attention
        if kv_colwise:  # vLLM v0.33.0 models/transformers/utils.py replace_linear_class: "colwise" is a
            return (s[0] // tp, *s[1:])  # ColumnParallelLinear, split below a head where TP > the KV heads
        heads = max(1, a.num_kv_heads // tp)
        dim = s[0] // a.num_kv_heads
        return (heads * dim, *s[1:])
    if name.endswith("experts.gate_up_proj"):
        return (s[0], s[1] // tp, s[2])
    if name.endswith("experts.down_proj"):
        return (s[0], s[1], s[2] // tp)
    if name.endswith("experts.gate_up_proj_bias"):
        return (s[0], s[1] // tp)
    if COLUMN.search(name):
        return (s[0] // tp, *s[1:])
    if ROW.search(name):
        return (s[0], s[1] // tp)
    if SHARDED_1D.search(name):
        return (s[0] // tp, *s[1:])
    if t.group == "vision":
        if spec.architecture in vllm_rules().replicated_vision.architectures:
            return tuple(s)  # built without TP layers (data/vllm.json replicated_vision)
        # mm_encoder_tp_mode="weights": the tower is TP-sharded but for the part kept whole (VisionSpec)
        kept = spec.vision.replicated_params if spec.vision is not None else 0
        return ((s[0] - kept) // tp + kept,)
    return tuple(s)  # biases of row-parallel layers and anything unknown: whole (conservative)


class MoEShards(BaseModel):
    """How vLLM splits routed experts (v0.33.0 vllm/model_executor/layers/fused_moe/config.py
    FusedMoEParallelConfig.make): without expert parallelism their intermediate dimension is split over
    TP x DP ranks (flatten_tp_across_dp_and_pcp), with it each of the TP x DP ranks holds whole experts,
    E // EP of them plus one on the first E mod EP ranks (expert_map_manager.py determine_expert_map)."""
    model_config = ConfigDict(frozen=True)

    tp: int  # ranks the experts' intermediate dimension is split over (EP off)
    ep: int = 1  # ranks whole experts are spread over (EP on); 1: off
    # --enable-eplb's redundant experts (--eplb-config num_redundant_experts): physical experts beyond the model's,
    # spread over the EP ranks with them (v0.30.0 vllm/model_executor/layers/fused_moe/layer.py
    # determine_expert_counts: global_num_experts = num_experts + num_redundant_experts)
    redundant: int = 0


def moe_shards(tp: int, dp: int, expert_parallel: bool, redundant: int = 0) -> MoEShards | None:
    """None where the experts shard like every other layer (TP only, no EP)."""
    if expert_parallel and tp * dp > 1:
        return MoEShards(tp=1, ep=tp * dp, redundant=redundant)
    return MoEShards(tp=tp * dp) if dp > 1 else None


class RankWeights(BaseModel):
    model_config = ConfigDict(frozen=True)

    rank: int  # global rank: pp_stage * tp + tp_rank
    pp_stage: int
    layers: int
    bytes: int
    rotary_cache_bytes: int
    # the routed experts of this rank's first MoE layer: the buffer EPLB copies one layer's experts through
    # (v0.30.0 vllm/distributed/eplb/eplb_state.py EplbState.add_model: empty_like of model.expert_weights[0])
    expert_layer_bytes: int = 0
    moe_layers: int = 0  # MoE layers in this rank's stage


def rotary_cache_bytes(spec: ModelSpec, version: str | None = None, video_pruning: bool = False) -> int:
    """One cos_sin_cache per distinct rope config: max_position x rotary_dim, model dtype; a linear or dynamic
    scaled rope holds max_position x factor positions; Gemma 3's sliding layers add an unscaled cache of their
    own; M-RoPE holds max_position x 4 positions before mrope_positions_factor_before (data/vllm.json
    rotary_cache) and, from it, in every class but those of mrope_pruning_architectures, which hold 4x again only
    with video_pruning
    (--video-pruning-rate above 0). version: the vLLM release (default: the modelled one)."""
    a = next((layer.attention for layer in spec.layers if layer.attention is not None), None)
    if a is None or spec.max_position_embeddings is None or a.mla is not None and a.mla.nope:
        return 0
    rules = vllm_rules().rotary_cache
    rope = spec.rope_scaling or {}
    if rope and all(isinstance(v, dict) for v in rope.values()):
        return _per_layer_type_rope_bytes(spec, rope)
    factor = rope.get("partial_rotary_factor", 1.0) if isinstance(rope.get("partial_rotary_factor"), (int, float)) else 1.0
    dim = a.mla.qk_rope_head_dim if a.mla is not None else int(a.head_dim_k * factor)
    one = spec.max_position_embeddings * dim * dtype_bytes(spec.dtype)
    scale = rope.get("factor")
    lengthened = (rope.get("rope_type") or rope.get("type")) in rules.factor_lengthens and isinstance(scale, (int, float))
    full = int(one * scale) if lengthened and isinstance(scale, (int, float)) else one
    orig = rope.get("original_max_position_embeddings")
    if (rope.get("rope_type") or rope.get("type")) in rules.factor_of_original and isinstance(scale, (int, float)) \
            and isinstance(orig, int) and "mrope_section" not in rope:  # YaRN: original positions x factor
        full = ceil(orig * scale) * dim * dtype_bytes(spec.dtype)
    release = version or vllm_rules().default_version
    # from mrope_positions_factor_before only the mrope_pruning_architectures pass a factor of 1 (4 with pruning);
    # every other M-RoPE class keeps the default 4 (Qwen2-VL, Qwen2.5-VL: data/vllm.json rotary_cache)
    own_factor = spec.architecture in rules.mrope_pruning_architectures
    pruned = video_pruning and own_factor
    before = _release_key(release) < _release_key(rules.mrope_positions_factor_before)
    if "mrope_section" in rope and (pruned or before or not own_factor):
        full *= rules.mrope_positions_factor
    # the DSA indexer's own rope, NeoX-style unless indexer_rope_interleave: a second cache of the same size
    # (data/vllm.json rotary_cache indexer_own_rope_source)
    indexer = full if a.mla is not None and a.mla.index_n_heads and not a.mla.indexer_rope_interleave else 0
    sliding = any(layer.attention is not None and layer.attention.kind == "sliding" for layer in spec.layers)
    if spec.model_type in rules.sliding_own_rope and sliding:
        return full + one + indexer
    return full + indexer


def transformers_rope_bytes(spec: ModelSpec) -> int:
    """The rotary buffers of vLLM's Transformers backend (--model-impl transformers): no cos/sin cache, but
    transformers' rotary module keeps inv_freq and original_inv_freq (rotary_dim / 2 float32 each) per rope config
    (data/vllm.json rotary_cache transformers_backend_source; vLLM v0.33.0 vllm/model_executor/models/transformers/
    base.py)."""
    a = next((layer.attention for layer in spec.layers if layer.attention is not None), None)
    if a is None or spec.max_position_embeddings is None:
        return 0
    rules = vllm_rules().rotary_cache
    per_dim = rules.transformers_backend_bytes_per_dim
    rope = spec.rope_scaling or {}
    if rope and all(isinstance(v, dict) for v in rope.values()):
        total = 0
        for layer_type, params in rope.items():
            kind = "sliding" if layer_type == "sliding_attention" else "full"
            heads = [layer.attention.head_dim_k for layer in spec.layers
                     if layer.attention is not None and layer.attention.kind == kind]
            if heads:
                prf = params.get("partial_rotary_factor")
                prf = prf if isinstance(prf, (int, float)) and params.get("rope_type") not in rules.whole_head else 1.0
                total += per_dim * int(max(heads) * prf)
        return total
    factor = rope.get("partial_rotary_factor", 1.0) if isinstance(rope.get("partial_rotary_factor"), (int, float)) else 1.0
    dim = a.mla.qk_rope_head_dim if a.mla is not None else int(a.head_dim_k * factor)
    sliding = any(layer.attention is not None and layer.attention.kind == "sliding" for layer in spec.layers)
    configs = 2 if spec.model_type in rules.sliding_own_rope and sliding else 1
    return configs * per_dim * dim


def _release_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:3])


def _per_layer_type_rope_bytes(spec: ModelSpec, rope: dict[str, Any]) -> int:
    """Rope parameters keyed by layer type (Gemma 4: full_attention, sliding_attention): one cache per type
    that has layers, at that type's head dim x its partial_rotary_factor; Gemma 4's "proportional" rope caches
    the whole head (data/vllm.json rotary_cache whole_head)."""
    assert spec.max_position_embeddings is not None
    rules = vllm_rules().rotary_cache
    total = 0
    for layer_type, params in rope.items():
        kind = "sliding" if layer_type == "sliding_attention" else "full"
        heads = [layer.attention.head_dim_k for layer in spec.layers
                 if layer.attention is not None and layer.attention.kind == kind]
        if not heads:
            continue
        prf = params.get("partial_rotary_factor")
        prf = prf if isinstance(prf, (int, float)) and params.get("rope_type") not in rules.whole_head else 1.0
        scale = params.get("factor")
        length = spec.max_position_embeddings
        if (params.get("rope_type") or params.get("type")) in rules.factor_lengthens and isinstance(scale, (int, float)):
            length = int(length * scale)
        total += length * int(max(heads) * prf) * dtype_bytes(spec.dtype)
    return total


# The planner asks for the same (model, TP, PP, scheme) several times (KV dtypes, utilizations).
# Keyed by the spec object's identity; the entry keeps the spec alive so the id cannot be reused. Bounded
# by the layers (and ranks) held (memo.py), not by a count.
_MEMO: Memo[tuple[ModelSpec, list[RankWeights]]] = Memo()


# vLLM's --moe-backend names of the MXFP4 expert kernels vramcalc models -> their entries in data/vllm.json mxfp4_moe
MXFP4_MOE_BACKENDS = {"marlin": "marlin", "triton": "triton_hopper", "flashinfer_trtllm": "flashinfer_trtllm"}


def mxfp4_moe_backend(compute_capability: str | None) -> str | None:
    """The MXFP4 MoE kernel vLLM picks on this GPU (data/vllm.json mxfp4_moe.selection); None: unknown."""
    if not compute_capability:
        return None
    cc = float(compute_capability)
    return next((r.backend for r in vllm_rules().mxfp4_moe.selection if r.min_cc <= cc < r.max_cc), None)


def _mxfp4_expert_dims(t: TensorSpec, spec: ModelSpec, out: int, inp: int, backend: str) -> tuple[int, int, float]:
    """(out, in) of one expert matrix (quant._matrices: gate and up apart, [I/TP, H]; down [H, I/TP]) as
    the backend allocates it, I and H rounded up separately, and the backend's bytes factor."""
    b = vllm_rules().mxfp4_moe.backends[backend]
    ia, ha = b.intermediate_align, b.hidden_align
    if "down" in t.name:
        out, inp = _round_up(out, ha), _round_up(inp, ia)
    else:
        out, inp = _round_up(out, ia), _round_up(inp, ha)
    return out, inp, b.expert_bytes_factor if b.expert_bytes_factor is not None else 1.0


def rocm_fp8_padding_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                              moe: MoEShards | None = None, partition: tuple[int, ...] | None = None) -> list[int]:
    """Bytes vLLM on ROCm adds to a pre-quantized FP8 checkpoint's linear weights, per rank in weights_per_rank's
    order: 256 bytes a row of each quantized linear weight whose rank-local row is a multiple of 512 bytes (one byte
    an FP8 value), storage the padded parameter keeps (v0.33.0 vllm/model_executor/layers/quantization/utils/
    fp8_utils.py _maybe_pad_fp8_weight, from process_fp8_weight_tensor_strategy and
    process_fp8_weight_block_strategy; VLLM_ROCM_FP8_PADDING=0 turns it off). The fused experts' FP8 paths do
    not pad; a channel-scaled or online-quantized FP8 weight is not padded either."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    if scheme.method not in ("fp8_tensor", "fp8_block"):
        return [0] * (tp * pp)
    stage = [0] * pp
    for st, mats in _quantized_rank_matrices(spec, tp, pp, scheme, moe, partition, experts=False):
        stage[st] += sum(c * o * 256 for c, o, i in mats if i % 512 == 0)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def mxfp8_dequant_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                           moe: MoEShards | None = None, partition: tuple[int, ...] | None = None) -> list[int]:
    """Bytes an MXFP8 checkpoint's weights gain per rank (weights_per_rank's order) where vLLM runs them emulated
    and dequantizes them to bf16 at load, one byte more a weight, the e8m0 scales kept (v0.33.0 vllm/model_executor/
    kernels/linear/mxfp8/emulation.py EmulationMxfp8LinearKernel.process_weights_after_loading, the linear layers;
    quantization/modelopt.py ModelOptMxFp8FusedMoE._dequant_mxfp8_weights_to_bf16, the routed experts on the
    emulation MoE backend; VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD=0 keeps them at one byte)."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    if scheme.method not in ("mxfp8", "ct_mxfp8"):  # compressed-tensors MXFP8 takes the same linear kernels
        return [0] * (tp * pp)
    stage = [0] * pp
    for st, mats in _quantized_rank_matrices(spec, tp, pp, scheme, moe, partition, experts=True):
        stage[st] += sum(c * o * i for c, o, i in mats)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def fp8_moe_requant_refusal(hidden: int, inter: int, backend: str = "aiter_mxfp4_mxfp4") -> tuple[int, int] | None:
    """The (hidden, intermediate per partition) the MXFP4 backend rounds an MoE layer's dims to, where it rounds
    them: Fp8BlockExpertsAsMxfp4FusedMoE.create_weights then raises (vLLM 0.34.0 online/fp8_requant.py; the
    rounding: fused_moe/oracle/mxfp4.py mxfp4_round_up_hidden_size_and_intermediate_size); None where it does not."""
    r = vllm_rules().fp8_moe_requant
    ha, ia = r.hidden_align[backend], r.intermediate_align[backend]
    return (_round_up(hidden, ha), _round_up(inter, ia)) if hidden % ha or inter % ia else None


def fp8_moe_requant_layer_bytes(w13_rows: int, hidden: int, w2_rows: int, inter: int,
                                backend: str = "aiter_mxfp4_mxfp4") -> int:
    """Bytes one re-quantized MoE layer holds on a rank: w13 (E x (2) I rows of hidden inputs) and w2 (E x H rows
    of inter inputs), each K / 2 bytes of e2m1 values a row and an e8m0 scale matrix [rows, K / 32], which the
    AITER_MXFP4_MXFP4 layout pads by aiter's e8m0_shuffle (vLLM 0.34.0 online/fp8_requant.py _requant,
    fused_moe/oracle/mxfp4.py convert_gpt_oss_weight_to_mxfp4_moe_kernel_format; ROCm/aiter
    aiter/utility/fp4_utils.py e8m0_shuffle)."""
    r = vllm_rules().fp8_moe_requant
    pr, pc = r.scale_pad.get(backend, [1, 1])
    return sum(rows * k // 2 + _round_up(rows, pr) * _round_up(ceil(k / r.block), pc)
               for rows, k in ((w13_rows, hidden), (w2_rows, inter)))


def fp8_moe_requant_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                             moe: MoEShards | None = None, partition: tuple[int, ...] | None = None,
                             backend: str = "aiter_mxfp4_mxfp4"
                             ) -> tuple[list[int], list[int], tuple[int, int] | None]:
    """VLLM_FP8_MOE_REQUANT=mxfp4 on ROCm (vLLM 0.34.0 quantization/online/fp8_requant.py
    Fp8BlockExpertsAsMxfp4FusedMoE), per rank in weights_per_rank's order: (the bytes the routed experts' MXFP4
    layout adds to their FP8 bytes, negative; the largest MoE layer's FP8 expert bytes, which are loaded one layer
    at a time and re-quantized once that layer is in, so the load peaks at the MXFP4 model plus that; the rounded
    (hidden, intermediate per partition) `backend` refuses in create_weights, or None). Each layer as
    fp8_moe_requant_layer_bytes lays it out for `backend`. Only the routed experts the checkpoint quantizes
    (Fp8Config.get_quant_method)."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    delta, peak = [0] * pp, [0] * pp
    refused: tuple[int, int] | None = None
    composite = spec.vision is not None
    layers: dict[tuple[int, str], list[tuple[TensorSpec, list[tuple[int, int, int]]]]] = {}
    for st, t, mats in _rank_linear_matrices(spec, tp, pp, moe, partition):
        if t.group != "routed_experts" or t.group not in scheme.quantize_groups or left_unquantized(t, composite,
                                                                                                    scheme):
            continue
        layers.setdefault((st, t.name.rsplit(".experts.", 1)[0]), []).append((t, mats))
    for (st, _), parts in layers.items():
        fp8 = sum(c * sum(b for _, _, b in matrix_tensors(scheme, o, i)) for _, mats in parts for c, o, i in mats)
        up = [(c, o, i) for t, mats in parts if "down" not in t.name for c, o, i in mats]  # w13: [E, (2) I, H]
        down = [(c, o, i) for t, mats in parts if "down" in t.name for c, o, i in mats]  # w2: [E, H, I]
        if not up or not down:
            continue
        hidden, inter = up[0][2], down[0][2]
        refused = refused or fp8_moe_requant_refusal(hidden, inter, backend)
        mx = fp8_moe_requant_layer_bytes(sum(c * o for c, o, _ in up), hidden, sum(c * o for c, o, _ in down), inter,
                                         backend)
        delta[st] += mx - fp8
        peak[st] = max(peak[st], fp8)
    return ([delta[st] for st in range(pp) for _ in range(tp)], [peak[st] for st in range(pp) for _ in range(tp)],
            refused)


def mxfp4_emulation_dequant_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                                     moe: MoEShards | None = None, partition: tuple[int, ...] | None = None
                                     ) -> list[int]:
    """Bytes a compressed-tensors MXFP4 checkpoint's linear layers gain per rank (weights_per_rank's order) where
    they run on vLLM's emulation kernel with VLLM_MXFP4_EMULATION_DEQUANT_AT_LOAD=1: each packed [N, K / 2] weight
    replaced by a bf16 [N, K] one, the e8m0 scales kept (vLLM 0.34.0 vllm/model_executor/kernels/linear/mxfp4/
    emulation.py EmulationMxfp4LinearKernel.process_weights_after_loading; checked against
    tests/data/vllm_mxfp4_emulation_dequant_oracle_v0.34.0.json). The routed experts take the MoE kernels, which do
    not read the variable."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    if scheme.method != "ct_mxfp4":
        return [0] * (tp * pp)
    stage = [0] * pp
    for st, mats in _quantized_rank_matrices(spec, tp, pp, scheme, moe, partition, experts=False):
        stage[st] += sum(c * (2 * o * i - o * i // 2) for c, o, i in mats)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def _rank_linear_matrices(spec: ModelSpec, tp: int, pp: int, moe: MoEShards | None,
                          partition: tuple[int, ...] | None
                          ) -> Iterator[tuple[int, TensorSpec, list[tuple[int, int, int]]]]:
    """(PP stage, tensor, [(count, out, in)]) of each decoder-layer weight matrix, at its TP-rank shape
    (embeddings, heads and towers are not decoder layers)."""
    split = pp_layer_split(spec.num_layers, pp, partition)
    starts = [sum(split[:i]) for i in range(pp)]
    for t in inventory(spec):
        m = re.match(r"model\.layers\.(\d+)\.", t.name)
        if not m or int(m.group(1)) >= len(spec.layers):
            continue
        layer = spec.layers[int(m.group(1))]
        mats = _matrices(t.model_copy(update={"shape": _rank_shape(t, spec, tp, layer, moe)}))
        if mats:
            yield max(i for i in range(pp) if starts[i] <= int(m.group(1))), t, mats


def _quantized_rank_matrices(spec: ModelSpec, tp: int, pp: int, scheme: QuantScheme, moe: MoEShards | None,
                             partition: tuple[int, ...] | None, experts: bool
                             ) -> Iterator[tuple[int, list[tuple[int, int, int]]]]:
    """(PP stage, [(count, out, in)]) of each decoder-layer tensor the scheme quantizes, at its TP-rank shape."""
    composite = spec.vision is not None
    for stage, t, mats in _rank_linear_matrices(spec, tp, pp, moe, partition):
        if t.group not in scheme.quantize_groups or (t.group == "routed_experts" and not experts):
            continue
        if not left_unquantized(t, composite, scheme):
            yield stage, mats


def _rdna_hybrid_takes(scheme: QuantScheme, k: int) -> bool:
    """RDNAHybridW4A16LinearKernel.can_implement for a 4-bit GPTQ / compressed-tensors WNA16 matrix of K inputs
    (vLLM 0.34.0 kernels/linear/mixed_precision/rdna_hybrid_w4a16.py: uint4 / uint4b8, groups of 32, 64 or 128,
    K a multiple of 16 and of the group)."""
    group = scheme.group_size if scheme.group_size > 0 else k
    return scheme.method in ("gptq", "int_pack") and scheme.bits == 4 and group in (32, 64, 128) and \
        k % 16 == 0 and k % group == 0


def rdna_prefill_copy_applies(gfx_arch: str, version: str) -> bool:
    """Where the RDNA hybrid W4A16 kernel runs the layers (gfx11 / gfx12; on gfx1100 RDNA3W4A16 comes first in
    _POSSIBLE_KERNELS[ROCM] and takes them) in a release with --kernel-config's rdna_hybrid_w4a16_prefill_dequant."""
    from .kv import _at_least  # vllm/kv.py imports this module

    return gfx_arch.startswith(("gfx11", "gfx12")) and gfx_arch != "gfx1100" and \
        _at_least(version, vllm_rules().rdna_prefill_dequant_since.version)


def rdna_prefill_copy_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                               dtype: str | None = None, gfx11: bool = True, moe: MoEShards | None = None,
                               partition: tuple[int, ...] | None = None) -> list[int]:
    """Bytes the dense prefill copies of --kernel-config rdna_hybrid_w4a16_prefill_dequant=enable add per rank: each
    matrix the RDNA hybrid W4A16 kernel takes gets an [N, K] copy in the activation dtype, laid out as an unquantized
    weight (on gfx11 its row one 128-byte cache line wider where K x 2 bytes is a multiple of 2048) and kept as a
    buffer (vLLM 0.34.0 rdna_hybrid_w4a16.py RDNAHybridW4A16LinearKernel._cache_dequant_weight ->
    UnquantizedLinearMethod.process_weights_after_loading)."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    element = dtype_bytes(dtype or spec.dtype)
    stage = [0] * pp
    for st, mats in _quantized_rank_matrices(spec, tp, pp, scheme, moe, partition, experts=False):
        for c, o, i in mats:
            if _rdna_hybrid_takes(scheme, i):
                pad = 128 if gfx11 and (i * element) % 2048 == 0 else 0
                stage[st] += c * o * (i * element + pad)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def rdna_int4_pad_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                           moe: MoEShards | None = None, partition: tuple[int, ...] | None = None) -> list[int]:
    """Bytes vLLM 0.32.0 and later add on a gfx1151 GPU (Strix Halo) to 4-bit GPTQ / compressed-tensors WNA16
    linear weights, per rank in weights_per_rank's order. On ROCm these layers take the first mixed-precision
    kernel that implements them (vllm/model_executor/kernels/linear/__init__.py _POSSIBLE_KERNELS[ROCM]: RDNA3W4A16
    on gfx1100 only, then RDNAHybridW4A16 on gfx11 / gfx12 for uint4 weights in groups of 32, 64 or 128 with K a
    multiple of 16); RDNAHybridW4A16 keeps them as int8 [N, K / 2] (the checkpoint's bytes) and on gfx1151 widens a
    row whose K / 2 bytes are a multiple of 1024 by one 128-byte cache line
    (kernels/linear/mixed_precision/rdna_hybrid_w4a16.py pack_skinny_int4, _weight_pad_bytes). AWQ runs its own
    Triton kernel on ROCm (quantization/auto_awq.py AutoAWQLinearMethod) and keeps its bytes."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    if scheme.method not in ("gptq", "int_pack") or scheme.bits != 4:
        return [0] * (tp * pp)
    stage = [0] * pp
    for st, mats in _quantized_rank_matrices(spec, tp, pp, scheme, moe, partition, experts=False):
        stage[st] += sum(c * o * 128 for c, o, i in mats if _rdna_hybrid_takes(scheme, i) and (i // 2) % 1024 == 0)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def gfx11_row_pad_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                           dtype: str | None = None, moe: MoEShards | None = None,
                           partition: tuple[int, ...] | None = None) -> list[int]:
    """Bytes vLLM 0.33.0 and later add on a gfx11 GPU (RDNA3 / RDNA3.5) to each unquantized linear weight, per rank
    in weights_per_rank's order: the row stride one 128-byte cache line wider where a row's bytes are a multiple of
    2048 (vllm/model_executor/layers/linear.py UnquantizedLinearMethod.process_weights_after_loading ->
    layers/utils.py maybe_pad_weight_avoid_cache_aliasing, cache_aliasing_pad_elems; the padded tensor's storage
    is kept under a view of the old shape). Routed experts (FusedMoE), embeddings and the LM head are not linear
    layers and keep their bytes; the vision tower's linears are not counted here."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    element = dtype_bytes(dtype or spec.dtype)
    composite = spec.vision is not None
    stage = [0] * pp
    for st, t, mats in _rank_linear_matrices(spec, tp, pp, moe, partition):
        if t.group == "routed_experts":
            continue
        quantized = scheme.method != "none" and t.group in scheme.quantize_groups and \
            not left_unquantized(t, composite, scheme)
        if not quantized:
            stage[st] += sum(c * o * 128 for c, o, i in mats if (i * element) % 2048 == 0)
    return [stage[st] for st in range(pp) for _ in range(tp)]


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def sharding_switches(spec: ModelSpec, tp: int, dcp: int, dcp_q_replicate: bool, replicate_embed: bool,
                      mla_disabled: bool = False, rocm: bool = False) -> tuple[int, bool]:
    """(q_group, replicate_embed) for weights_per_rank: what --dcp-q-replicate / VLLM_DCP_Q_REPLICATE and
    VLLM_REPLICATE_EMBED change for this model (data/vllm.json dcp_q_replicate, replicate_embed name the vLLM 0.33.0
    classes that read them): the query projection held whole within each of the DCP groups of an MLA model; the
    embedding whole on every rank of DeepSeek-V3.2's CUDA class (at TP 1 it is whole already)."""
    rules = vllm_rules()
    q_group = dcp if dcp_q_replicate and dcp > 1 and not mla_disabled and \
        spec.architecture in rules.dcp_q_replicate.architectures else 1
    embed = replicate_embed and tp > 1 and not rocm and spec.architecture in rules.replicate_embed.architectures
    return q_group, embed


def weights_per_rank(spec: ModelSpec, tp: int = 1, pp: int = 1, scheme: QuantScheme | None = None,
                     dtype: str | None = None, mxfp4_backend: str | None = None,
                     moe: MoEShards | None = None, partition: tuple[int, ...] | None = None,
                     version: str | None = None, q_group: int = 1, replicate_embed: bool = False,
                     kv_colwise: bool = False) -> list[RankWeights]:
    """Weight bytes of every GPU (all ranks of one TP x PP engine). mxfp4_backend: the MoE kernel
    whose padded layout MXFP4 experts take (mxfp4_moe_backend); None keeps the checkpoint layout.
    moe: the routed experts' split under data / expert parallelism (moe_shards); None: TP like the rest.
    partition: VLLM_PP_LAYER_PARTITION's layers per stage (pp_layer_split).
    version: the vLLM release, for its buffers (rotary_cache_bytes); None: the modelled one.
    q_group, replicate_embed: the sharding switches of sharding_switches; kv_colwise: --model-impl transformers'
    k/v projections (_rank_shape)."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    # the layers' bytes do not depend on the release: sized once, the release's rotary cache added to them
    key = (id(spec), tp, pp, scheme, dtype, mxfp4_backend, moe, partition, q_group, replicate_embed, kv_colwise)
    hit = _MEMO.get(key)
    if hit is not None and hit[0] is spec:
        base = hit[1]
    else:
        base = _weights_per_rank(spec, tp, pp, scheme, dtype, mxfp4_backend, moe, partition, q_group, replicate_embed,
                                 kv_colwise)
        _MEMO.put(key, (spec, base), layers_weight(len(spec.layers)) + len(base))
    rope = rotary_cache_bytes(spec, version)
    return [w.model_copy(update={"bytes": w.bytes + rope, "rotary_cache_bytes": rope}) for w in base]


def _weights_per_rank(spec: ModelSpec, tp: int, pp: int, scheme: QuantScheme, dtype: str | None,
                      mxfp4_backend: str | None, moe: MoEShards | None = None,
                      partition: tuple[int, ...] | None = None, q_group: int = 1, replicate_embed: bool = False,
                      kv_colwise: bool = False) -> list[RankWeights]:
    """Each rank's weight bytes without the rotary cache (weights_per_rank adds the release's)."""
    wdtype = dtype or spec.dtype
    base = dtype_bytes(wdtype)
    split = pp_layer_split(spec.num_layers, pp, partition)
    starts = [sum(split[:i]) for i in range(pp)]
    composite = spec.vision is not None
    stage_bytes = [0] * pp
    moe_idx = [i for i, la in enumerate(spec.layers) if la.mlp.kind == "moe"]
    first_moe = [next((i for i in moe_idx if starts[st] <= i < starts[st] + split[st]), -1) for st in range(pp)]
    expert_layer = [0] * pp
    per_kind: dict[tuple, int] = {}  # identical layers shard identically: size each tensor kind once
    kinds: dict[LayerSpec, int] = {}  # each layer hashed once, not once per tensor (a LayerSpec hashes deeply)
    kind_of = [kinds.setdefault(la, len(kinds)) for la in spec.layers]
    stage_of = [max(i for i in range(pp) if starts[i] <= li) for li in range(len(spec.layers))]
    for t in _vllm_tensors(spec):
        m = _LAYER_TENSOR.match(t.name)
        li = int(m.group(1)) if m else -1
        layer = spec.layers[li] if m else None
        if m:
            stages = [stage_of[li]]
        elif t.name == "lm_head.weight" or t.name.startswith("model.norm"):
            stages = [pp - 1]
        elif t.name.endswith("embed_tokens.weight"):
            stages = [0] + ([pp - 1] if spec.tie_word_embeddings and pp > 1 else [])
        else:
            stages = [0]  # vision tower and extras: the first stage
        key = (kind_of[li], t.name[m.end():], t.shape, t.group) if m else None
        nbytes = per_kind.get(key) if key is not None else None
        if nbytes is None:
            nbytes = _tensor_rank_bytes(t, spec, tp, layer, scheme, base, mxfp4_backend, moe, composite, q_group,
                                        replicate_embed, kv_colwise)
            if key is not None and not scheme.ignore and not scheme.only and not scheme.overrides:
                # ignore lists (and Humming's per-layer overrides) may name single layers
                per_kind[key] = nbytes
        for st in stages:
            stage_bytes[st] += nbytes
            if m and t.group == "routed_experts" and li == first_moe[st]:
                expert_layer[st] += nbytes
    return [RankWeights(rank=st * tp + r, pp_stage=st, layers=split[st], bytes=stage_bytes[st],
                        rotary_cache_bytes=0, expert_layer_bytes=expert_layer[st],
                        moe_layers=sum(starts[st] <= i < starts[st] + split[st] for i in moe_idx))
            for st in range(pp) for r in range(tp)]


_LAYER_TENSOR = re.compile(r"model\.layers\.(\d+)\.")


def _vllm_tensors(spec: ModelSpec) -> list[TensorSpec]:
    """The checkpoint's tensors as vLLM allocates them: a Gemma 4 attention_k_eq_v full-attention layer ships k_proj
    only, but vLLM's QKVParallelLinear keeps a V slot beside it and loads K into both
    (vLLM v0.34.0 vllm/model_executor/models/gemma4.py Gemma4Attention, _gemma4_layer_weights_mapper)."""
    out = inventory(spec)
    if not any(la.attention is not None and la.attention.k_eq_v for la in spec.layers):
        return out
    extra = []
    for t in out:
        m = re.match(r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)$", t.name)
        attn = spec.layers[int(m.group(1))].attention if m else None
        if attn is not None and attn.k_eq_v:
            extra.append(t.model_copy(update={"name": t.name.replace(".k_proj.", ".v_proj.")}))
    return out + extra if extra else out


def _tensor_rank_bytes(t: TensorSpec, spec: ModelSpec, tp: int, layer: LayerSpec | None, scheme: QuantScheme,
                       base: int, mxfp4_backend: str | None, moe: MoEShards | None, composite: bool,
                       q_group: int = 1, replicate_embed: bool = False, kv_colwise: bool = False) -> int:
    """Bytes of tensor t on one TP rank: its rank shape (_rank_shape) in the scheme's stored layout."""
    shape = _rank_shape(t, spec, tp, layer, moe, q_group, replicate_embed, kv_colwise)
    # float32 whatever the model dtype (data/vllm.json fp32_params): DeepSeek's router bias, a Mamba A
    fp32 = vllm_rules().fp32_params
    size = 4 if any(p in t.name for p in fp32.patterns) or (
        t.group == "router" and spec.model_type in fp32.router_model_types) else base
    rank_t = t.model_copy(update={"shape": shape})
    mats = _matrices(rank_t) if t.group in scheme.quantize_groups and scheme.method != "none" else []
    if mats and scheme.method == "humming" and not left_unquantized(t, composite, scheme):
        nbytes = _humming_rank_bytes(t, rank_t, spec, tp, layer, moe, q_group, replicate_embed, kv_colwise, scheme)
        if nbytes is not None:
            return nbytes
    elif mats and not left_unquantized(t, composite, scheme):
        factor = 1.0
        if scheme.method == "mxfp4" and t.group == "routed_experts" and mxfp4_backend:
            padded = [(c, *_mxfp4_expert_dims(t, spec, o, i, mxfp4_backend)) for c, o, i in mats]
            mats, factor = [(c, o, i) for c, o, i, _ in padded], padded[0][3]
        nbytes = int(factor * sum(c * sum(b for _, _, b in matrix_tensors(scheme, o, i)) for c, o, i in mats))
        if scheme.one_scale_per_module and _FUSED_FOLLOWER.search(t.name):
            nbytes -= sum(c for c, _, _ in mats) * 4  # the fused module's one fp32 scale is counted on its first shard
        return nbytes
    if t.group == "vision" and spec.vision is not None and spec.vision.fp32_params and size < 4:
        # MiniMax-M3's patch embedding stays float32 (VisionSpec.fp32_params), kept whole on every rank
        return prod(shape) * size + spec.vision.fp32_params * (4 - size)
    return prod(shape) * size


# vLLM's fused linear modules (packed_modules_mapping): their shards, the first one first
_HUMMING_FUSED = [(re.compile(r"\.self_attn\.([qkv])_proj\.weight$"), ("q", "k", "v")),
                  (re.compile(r"\.mlp\.(gate|up)_proj\.weight$"), ("gate", "up"))]
_NAMES: dict[int, tuple[ModelSpec, dict[str, TensorSpec]]] = {}


def _humming_rank_bytes(t: TensorSpec, rank_t: TensorSpec, spec: ModelSpec, tp: int, layer: LayerSpec | None,
                        moe: MoEShards | None, q_group: int, replicate_embed: bool, kv_colwise: bool,
                        scheme: QuantScheme) -> int | None:
    """Bytes on one TP rank of a module in vLLM 0.34.0's Humming schema as it stays after loading
    (quant.humming_tensors at N, K padded to scheme.pad_nk: HummingLinearMethod / HummingMoEMethod
    process_weights_after_loading hand prepare_and_transform_humming_tensors pad_n_to_multiple=256,
    pad_k_to_multiple=128, whose check_and_pad_tensors pads every tensor to the schema's shapes there). A fused module
    (qkv_proj, gate_up_proj) is padded whole: counted on its first shard, 0 on the others. None: a linear layer
    online quant leaves unquantized (input size or its partition not a multiple of 32, HummingConfig.get_quant_method),
    or a router the model builds without the quant config."""
    from ..quant import humming_tensors

    from ..quant import humming_layer_names
    from .humming import for_layer

    if scheme.overrides:  # dynamic's +: patterns (HummingConfig.get_layer_weight_schema)
        scheme = for_layer(scheme, humming_layer_names(t, spec.vision is not None))
    pn, pk = scheme.pad_nk
    if t.group == "router" and spec.model_type not in vllm_rules().router_quant_config.model_types:
        return None  # a GateLinear built without the quant config (data/vllm.json router_quant_config)

    def round_up(x: int, m: int) -> int:
        return ceil(x / m) * m if m else x

    if t.group == "routed_experts":  # (E, N, K) per rank: w13 (gate and up, or up alone) and w2
        e, n, k = rank_t.shape
        return sum(b for _, _, b in humming_tensors(scheme, round_up(n, pn), round_up(k, pk), experts=e))
    n, k = rank_t.shape
    if scheme.min_k and (k % scheme.min_k or t.shape[1] % scheme.min_k):
        return None
    for rx, shards in _HUMMING_FUSED:
        m = rx.search(t.name)
        if not m:
            continue
        hit = _NAMES.get(id(spec))
        if hit is None or hit[0] is not spec:
            hit = (spec, {x.name: x for x in _vllm_tensors(spec)})
            _NAMES[id(spec)] = hit
        names = hit[1]
        sibs = [names.get(t.name[: m.start(1)] + sh + t.name[m.end(1):]) for sh in shards]
        present = [x for x in sibs if x is not None]
        if present[0].name != t.name:
            return 0  # counted on the module's first shard
        n = sum(_rank_shape(x, spec, tp, layer, moe, q_group, replicate_embed, kv_colwise)[0] for x in present)
        break
    return sum(b for _, _, b in humming_tensors(scheme, round_up(n, pn), round_up(k, pk)))


# the shards after the first of vLLM's fused linear modules (packed_modules_mapping: qkv_proj = q, k, v;
# gate_up_proj = gate, up): an online per-tensor FP8 scale is one for the fused module (vLLM 0.34.0
# layers/quantization/online/fp8.py Fp8PerTensorOnlineLinearMethod.process_weights_after_loading)
_FUSED_FOLLOWER = re.compile(r"\.(k_proj|v_proj|up_proj)\.weight$")


class LayerTensor(BaseModel):
    """One parameter of a decoder layer on one TP rank (the name after `model.layers.N.`)."""
    model_config = ConfigDict(frozen=True)

    name: str
    group: str
    shape: tuple[int, ...]
    bytes: int


def layer_tensors(spec: ModelSpec, tp: int = 1, scheme: QuantScheme | None = None, dtype: str | None = None,
                  mxfp4_backend: str | None = None, moe: MoEShards | None = None,
                  kv_colwise: bool = False) -> list[list[LayerTensor]]:
    """Each decoder layer's parameters on one TP rank, sized as weights_per_rank sizes them (for the offloaders,
    which take whole parameters of the layers make_layers builds: vllm/model_executor/models/utils.py, 0.33.0);
    kv_colwise: the Transformers backend's sharding (_rank_shape)."""
    scheme = scheme if scheme is not None else scheme_from_config(spec.quantization_config, spec)
    base = dtype_bytes(dtype or spec.dtype)
    composite = spec.vision is not None
    out: list[list[LayerTensor]] = [[] for _ in spec.layers]
    for t in inventory(spec):
        m = re.match(r"model\.layers\.(\d+)\.", t.name)
        if not m:
            continue
        layer = spec.layers[int(m.group(1))]
        out[int(m.group(1))].append(LayerTensor(
            name=t.name[m.end():], group=t.group, shape=_rank_shape(t, spec, tp, layer, moe, kv_colwise=kv_colwise),
            bytes=_tensor_rank_bytes(t, spec, tp, layer, scheme, base, mxfp4_backend, moe, composite,
                                     kv_colwise=kv_colwise)))
    return out
