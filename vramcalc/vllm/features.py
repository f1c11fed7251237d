"""What vLLM's optional serving features hold on each GPU (data/vllm_features.json names each rule's source).

LoRA (vLLM v0.33.0 vllm/lora/layers/*.py create_lora_weights): every wrapped projection gets zero buffers
    lora_a: max_loras x slices x rank_a x in_a      lora_b: max_loras x out_b x rank
  column-parallel (qkv, gate_up, up, q_b, kv_b, in_proj): in_a = the full input, out_b = out / TP per slice,
      rank_a = rank (rank / TP with --fully-sharded-loras)
  row-parallel (o_proj, down_proj, out_proj): in_a = in / TP, out_b = the full output (out / TP fully sharded)
  replicated (MLA q_a / kv_a, the MoE router): whole
  fused MoE experts (vllm/lora/layers/fused_moe.py FusedMoEWithLoRA): the gated MLP's slots once per expert, expert
      width / TP; FusedMoE3DWithLoRA (is_3d_moe_weight classes, data/vllm_features.json lora moe_3d): one gate/up
      lora_A; --enable-moe-shared-loras: the gate/up lora_A and the down lora_B once for all experts;
      --enable-mixed-moe-lora-format: FusedMoEWithLoRA for 3D classes too; plus adapter_enabled (max_loras + 1 int32)
  gated delta net conv1d (a ColumnParallelLinear, qwen_gdn_linear_attn.py): conv kernel x rank, conv_dim / TP x rank
  Mamba mixers (mamba_mixer.py, mamba_mixer2.py): conv1d (conv kernel in), in_proj, x_proj / dt_proj, out_proj,
      Mamba-2's conv1d / in_proj a lora_A per slice (unwrapped with --fully-sharded-loras)
  routed experts under DP / EP: rank 0's MoE shard (weights.py MoEShards), whole experts with EP
  the vision tower and connector with --enable-tower-connector-lora (Qwen3-VL / Qwen3.5 towers, tower_lora_bytes):
      the blocks' qkv / proj / MLP and the mergers' two linears, column / row parallel as above
  embed_tokens / lm_head, for architectures that list them (vocal_parallel_embedding.py, logits_processor.py):
      vocab x rank + hidden x rank, unsharded; up to 0.11.x also lora_extra_vocab_size rows
  in the model dtype (lora_dtype auto), built inside 'Model loading took' (gpu_model_runner.py load_model).
CPU offload (vllm/model_executor/offloader/uva.py UVAOffloader._maybe_offload_to_cpu): up to cpu_offload_gb of each
    rank's decoder-layer parameters live in pinned host memory and cross PCIe at every forward step.
"""

from __future__ import annotations

import json
from math import ceil
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data_files import load
from ..data_models import VllmFeatures
from ..gpus import GPU, gpu_row
from ..kv import dtype_bytes
from ..errors import InputError
from ..messages import Message, error
from ..spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec, SSMSpec
from .weights import MoEShards

GIB = 2**30


def config_object(flag: str, v: Any, config_class: str, fields: tuple[str, ...] | list[str],
                  source: str, since: dict[str, str] | None = None, version: str | None = None) -> dict[str, Any]:
    """A JSON-valued serve argument (`--kv-transfer-config '{...}'`; its dotted keys arrive merged as one object):
    one JSON object whose keys are fields of vLLM's `config_class`, refused in the argument's name otherwise.
    since: the release that added a field; before it the field is refused as vLLM's class then refused it."""
    if since:
        from .weights import vllm_rules
        at = _key(version or vllm_rules().default_version)
        fields = [f for f in fields if f not in since or at >= _key(since[f])]
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise InputError(f"argument {flag}: not valid JSON: {v[:80]!r}") from None
    if not isinstance(v, dict):
        raise InputError(f"argument {flag}: a JSON object of {config_class} fields, got {v!r}")
    for k in v:
        if k not in fields:
            raise InputError(f"argument {flag}: {config_class} has no field {k!r} (fields: {', '.join(fields)}; "
                             f"{source})")
    return dict(v)


def features() -> VllmFeatures:
    """data/vllm_features.json, typed."""
    return load("vllm_features.json", VllmFeatures)


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".")[:3])


class LoraSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_loras: int
    rank: int
    fully_sharded: bool = False
    extra_vocab: int = 0  # lora_extra_vocab_size (releases before 0.12.0)
    moe_shared: bool = False  # --enable-moe-shared-loras (LoRAConfig.enable_moe_shared_loras)
    mixed_moe: bool = False  # --enable-mixed-moe-lora-format (LoRAConfig.enable_mixed_moe_lora_format)


def lora_settings(version: str, max_loras: int | None, rank: int | None, fully_sharded: bool,
                  extra_vocab: int | None, moe_shared: bool = False, mixed_moe: bool = False) -> LoraSettings:
    lo = features().lora
    old = _key(version) < _key(lo.extra_vocab.until)
    return LoraSettings(max_loras=max_loras or lo.max_loras, rank=rank or lo.max_lora_rank,
                        fully_sharded=fully_sharded,
                        extra_vocab=(lo.extra_vocab.size if extra_vocab is None else extra_vocab) if old else 0,
                        moe_shared=moe_shared, mixed_moe=mixed_moe)


def lora_graph_cases(max_loras: int | None, specialize: bool) -> int:
    """How many times each CUDA-graph size is captured with LoRA on: vLLM v0.33.0 vllm/v1/cudagraph_dispatcher.py
    _get_lora_cases (compilation_config cudagraph_specialize_lora, on by default) captures no adapter (0) and each of
    vllm/lora/utils.py get_captured_lora_counts: max_loras + 1 alone, or with --specialize-active-lora every power of
    2 up to max_loras + 1 and max_loras + 1 itself."""
    n = max_loras or features().lora.max_loras
    if not specialize:
        return 2
    return 1 + sum(1 for k in range(1, n + 2) if k & (k - 1) == 0 or k == n + 1)


def lora_refusals(spec: ModelSpec, s: LoraSettings, max_cpu_loras: int | None, version: str,
                  extra_vocab_given: bool) -> list[Message]:
    """LoRAConfig's own checks (vLLM v0.33.0 vllm/config/lora.py), in its words."""
    lo = features().lora
    out = []
    where = "vllm/config/lora.py LoRAConfig"
    if spec.architecture in lo.unsupported:  # verify_with_model_config: the class lacks SupportsLoRA
        out.append(error("vllm.lora.unsupported", f"LoRA is not supported for {spec.architecture} ({spec.id}). "
                         "Supported models implement the `SupportsLoRA` interface. Run this model without "
                         f"`enable_lora`. [{where}.verify_with_model_config]", fix="drop --enable-lora",
                         source=where))
    if s.rank not in lo.ranks:  # MaxLoRARanks, a Literal: argparse's choices in vllm serve
        out.append(error("vllm.lora.rank", f"argument --max-lora-rank: invalid choice: {s.rank} (choose from "
                         f"{', '.join(str(r) for r in lo.ranks)}) [{where} MaxLoRARanks]",
                         fix="--max-lora-rank " + str(min((r for r in lo.ranks if r >= s.rank), default=lo.ranks[-1])),
                         source=where))
    if max_cpu_loras is not None and max_cpu_loras < s.max_loras:
        out.append(error("vllm.lora.max_cpu_loras", f"max_cpu_loras ({max_cpu_loras}) must be >= max_loras "
                         f"({s.max_loras}). [{where}.__post_init__]", fix=f"--max-cpu-loras {s.max_loras}",
                         source=where))
    if "lm_head" in _embedding_modules(spec) and spec.vocab_size > lo.max_vocab:
        src = "vllm/lora/layers/logits_processor.py LogitsProcessorWithLoRA.create_lora_weights"
        out.append(error("vllm.lora.vocab", f"When using LoRA, vocab size must be <= {lo.max_vocab} [{src}]", source=src))
    if extra_vocab_given and _key(version) >= _key(lo.extra_vocab.until):
        out.append(error("vllm.lora.extra_vocab_removed", f"vllm serve: error: unrecognized arguments: "
                         f"--lora-extra-vocab-size (removed in vLLM {lo.extra_vocab.until}: {lo.extra_vocab.source})",
                         fix="drop --lora-extra-vocab-size", source="vllm/engine/arg_utils.py"))
    return out


def _embedding_modules(spec: ModelSpec) -> list[str]:
    """embed_tokens / lm_head, where the architecture's vLLM class lists them (both when it is not known)."""
    return features().lora.embedding_modules.get(spec.architecture or "", ["embed_tokens", "lm_head"])


def _column(ins: int, outs: list[int], r: int, tp: int, fs: bool, one_slice: bool = False) -> int:
    """Elements of one column-parallel layer's slots (one adapter): A per slice over the full input (one A for a
    layer packed from one checkpoint tensor), B sharded."""
    ra = ceil(r / tp) if fs else r
    return (1 if one_slice else len(outs)) * ra * ins + sum(ceil(o / tp) for o in outs) * r


def _row(ins: int, out: int, r: int, tp: int, fs: bool) -> int:
    return r * ceil(ins / tp) + (ceil(out / tp) if fs else out) * r


def _replicated(ins: int, outs: list[int], r: int) -> int:
    return len(outs) * r * ins + sum(outs) * r


def _attention(a: AttentionSpec, h: int, r: int, tp: int, fs: bool, fused: set[str]) -> int:
    ins = a.input_size or h
    if a.mla is not None:
        m = a.mla
        qk = m.qk_nope_head_dim + m.qk_rope_head_dim
        n = _replicated(ins, [m.kv_lora_rank + m.qk_rope_head_dim] + ([m.q_lora_rank] if m.q_lora_rank else []), r)
        n += _column(m.q_lora_rank, [a.num_heads * qk], r, tp, fs) if m.q_lora_rank else \
            _column(ins, [a.num_heads * qk], r, tp, fs)
        n += _column(m.kv_lora_rank, [a.num_heads * (m.qk_nope_head_dim + m.v_head_dim)], r, tp, fs)
        return n + _row(a.num_heads * m.v_head_dim, h, r, tp, fs)
    kv_rank = max(1, a.num_kv_heads // tp) * tp  # K/V replicated past the KV heads: each rank holds whole heads
    q = a.num_heads * a.head_dim_k * (2 if a.output_gate else 1)
    n = _column(ins, [q, kv_rank * a.head_dim_k, kv_rank * a.head_dim_v], r, tp, fs, "qkv_proj" in fused)
    return n + _row(a.num_heads * a.head_dim_v, h, r, tp, fs)


def _ssm(s: SSMSpec, h: int, r: int, tp: int, fs: bool, fused: set[str]) -> int:
    if s.num_v_heads:  # gated delta net: in_proj_qkvz, in_proj_ba, conv1d (a ColumnParallelLinear), out_proj
        k, v = s.num_k_heads * s.head_k_dim, s.num_v_heads * s.head_v_dim
        n = _column(h, [k, k, v, v], r, tp, fs, "in_proj_qkvz" in fused)
        n += _column(h, [s.num_v_heads, s.num_v_heads], r, tp, fs, "in_proj_ba" in fused)
        n += _column(s.d_conv, [2 * k + v], r, tp, fs)  # qwen_gdn_linear_attn.py: conv_kernel_size -> conv_dim
        return n + _row(v, h, r, tp, fs)
    di = s.d_inner
    if s.kind == "mamba1":  # mamba_mixer.py MambaMixer: conv1d, in_proj (x, z), x_proj, dt_proj, out_proj
        n = _column(s.d_conv, [di], r, tp, fs) + _column(h, [di, di], r, tp, fs, "in_proj" in fused)
        n += _row(di, s.dt_rank + 2 * s.d_state, r, tp, fs) + _column(s.dt_rank, [di], r, tp, fs)
        return n + _row(di, h, r, tp, fs)
    # mamba_mixer2.py MambaMixer2: with n_groups % TP == 0 conv1d and in_proj are MergedColumnParallelLinear of 3 and
    # 5 slices (MergedColumnParallelLinearVariableSliceWithLoRA: a lora_A per slice); otherwise one slice each, the
    # groups replicated up to TP (MambaStateShapeCalculator.extra_groups_for_head_shards). The variable-slice wrapper
    # has no fully sharded form (can_replace_layer under _not_fully_sharded_can_replace): with --fully-sharded-loras
    # the two are not wrapped at all
    if s.n_groups % tp == 0:
        gs = s.n_groups * s.d_state
        n = 0 if fs else _column(s.d_conv, [di, gs, gs], r, tp, fs) + _column(h, [di, di, gs, gs, s.n_heads], r, tp, fs)
    else:
        conv = di + 2 * tp * s.d_state
        n = _column(s.d_conv, [conv], r, tp, fs) + _column(h, [di + conv + s.n_heads], r, tp, fs)
    return n + _row(di, h, r, tp, fs)


def _experts(m: MLPSpec, h: int, r: int, tp: int, fs: bool, shared: bool, three_d: bool,
             shards: MoEShards | None = None) -> int:
    """vllm/lora/layers/fused_moe.py create_lora_weights, one adapter: w13 lora_A (slices x experts x rank x hidden),
    w13 lora_B (slices x experts x width / TP x rank), w2 lora_A (experts x rank x width / TP), w2 lora_B (experts x
    hidden x rank). FusedMoE3DWithLoRA: one w13 slice, its lora_B 2 x width / TP wide; shared (FusedMoEWithLoRA with
    enable_moe_shared_loras): w13 lora_A and w2 lora_B with expert dimension 1. The experts and their width are rank
    0's MoE shard (weights.py MoEShards: width over TP x DP, or whole experts over EP; TP for the rank sharding)."""
    if shards is not None:
        tp = shards.tp
        phys = m.num_experts + shards.redundant
        e = phys // shards.ep + (1 if phys % shards.ep else 0)  # determine_expert_map: rank 0 takes one more
    else:
        e = m.num_experts
    w = ceil(m.expert_intermediate_size / tp)
    ra, hb = (ceil(r / tp), ceil(h / tp)) if fs else (r, h)
    if three_d:
        w13 = e * ra * h + e * 2 * w * r
    else:
        slices = 2 if m.gated else 1
        w13 = slices * (1 if shared else e) * ra * h + slices * e * w * r
    return w13 + e * r * w + (1 if shared else e) * hb * r


def _mlp(m: MLPSpec, h: int, r: int, tp: int, fs: bool, fused: set[str],
         moe: tuple[bool, bool, MoEShards | None]) -> int:
    def gated(width: int, gate: bool) -> int:
        return _column(h, [width] * (2 if gate else 1), r, tp, fs, "gate_up_proj" in fused) + _row(width, h, r, tp, fs)

    n = gated(m.intermediate_size, m.gated) if m.intermediate_size else 0
    if m.kind == "moe":
        n += _experts(m, h, r, tp, fs, *moe)
        n += _replicated(h, [m.num_experts], r)  # the router
        if m.shared_intermediate_size:
            n += gated(m.shared_intermediate_size, m.gated)
            if m.shared_expert_gate:  # a ReplicatedLinear hidden -> 1 (qwen3_next.py shared_expert_gate)
                n += _replicated(h, [1], r)
    return n


def _layer(layer: LayerSpec, h: int, r: int, tp: int, fs: bool, fused: set[str],
           moe: tuple[bool, bool, MoEShards | None]) -> int:
    n = _attention(layer.attention, h, r, tp, fs, fused) if layer.attention is not None else 0
    n += _ssm(layer.ssm, h, r, tp, fs, fused) if layer.ssm is not None else 0
    return n + (_mlp(layer.mlp, h, r, tp, fs, fused, moe) if layer.mlp.kind != "none" else 0)


def lora_bytes(spec: ModelSpec, s: LoraSettings, tp: int, first: int, last: int, first_stage: bool,
               last_stage: bool, dtype: str | None = None, shards: MoEShards | None = None) -> int:
    """The adapter slots one rank holds for layers first..last-1 (and the embedding / head its stage holds);
    shards: the routed experts' split under DP / EP (weights.py moe_shards; None: by TP)."""
    h, r, fs = spec.hidden_size, s.rank, s.fully_sharded
    per_kind: dict[LayerSpec, int] = {}
    lo = features().lora
    fused = set(lo.one_slice.get(spec.architecture or "", []))
    # model_manager.py LoRAModelManager.__init__: FusedMoE3DWithLoRA for an is_3d_moe_weight class unless either flag
    moe = (s.moe_shared, spec.architecture in lo.moe_3d and not (s.moe_shared or s.mixed_moe), shards)
    n = flags = 0
    for layer in spec.layers[first:last]:
        if layer not in per_kind:
            per_kind[layer] = _layer(layer, h, r, tp, fs, fused, moe)
        n += per_kind[layer]
        if layer.mlp.kind == "moe":  # fused_moe.py create_lora_weights: adapter_enabled, max_loras + 1 int32
            flags += 4 * (s.max_loras + 1)
    emb = _embedding_modules(spec)
    extra = s.extra_vocab
    if first_stage and "embed_tokens" in emb:  # VocabParallelEmbeddingWithLoRA: (vocab + extra) x rank, hidden x rank
        n += (spec.vocab_size + extra) * r + h * r + extra * h
    mapping = 0
    if last_stage and "lm_head" in emb:  # LogitsProcessorWithLoRA: rank x hidden, vocab x rank
        pad = features().lora.extra_vocab.padding
        vocab = ceil((spec.vocab_size + extra) / pad) * pad if extra else spec.vocab_size  # before 0.12: padded
        n += r * h + vocab * r + extra * h
        if tp > 1:  # sharded_to_full_mapping_gpu: one int64 per padded vocab row (ParallelLMHead, padding 64)
            mapping = ceil((spec.vocab_size + extra) / 64) * 64 * 8
    base = 0
    if emb and extra:  # before 0.12 (vLLM 0.10.1.1 model_executor/models/llama.py): the model's own rows grow
        p64, p256 = (lambda x: ceil(x / 64) * 64), (lambda x: ceil(x / 256) * 256)
        if first_stage:  # LlamaModel: vocab + extra x max_loras rows (the added part padded on its own)
            base += ceil(p64(extra * s.max_loras) / tp) * h
        if last_stage and not spec.tie_word_embeddings:  # lm_head: org and added vocab each padded to 256
            base += ceil((p256(spec.vocab_size) + p256(extra) - p64(spec.vocab_size)) / tp) * h
    b = dtype_bytes(dtype or spec.dtype)
    return n * s.max_loras * b + base * b + mapping + flags


def tower_lora_bytes(spec: ModelSpec, s: LoraSettings, tp: int, dtype: str | None = None) -> int | None:
    """--enable-tower-connector-lora: the slots on the vision tower's and connector's linear layers (vLLM v0.33.0
    vllm/lora/model_manager.py LoRAModelManager._maybe_init_mm / _create_lora_modules over the modules under
    get_mm_mapping's tower_model and connector prefixes). Qwen3_VisionTransformer (vllm/model_executor/models/
    qwen3_vl.py; Qwen3-VL, Qwen3-VL-MoE, Qwen3.5 alike): per block the packed attn.qkv (one lora_A; no slots on
    the classes of data/vllm_features.json lora tower_connector vision_qkv_unwrapped), attn.proj, mlp.linear_fc1,
    mlp.linear_fc2; per merger (the patch merger and each deepstack merger) linear_fc1 and linear_fc2. tp: the
    tower's own split (1 with --mm-encoder-tp-mode data). None: a tower whose linears vramcalc does not read."""
    v = spec.vision
    if v is None or v.intermediate_size is None or v.merger_in is None or v.merger_out is None:
        return None
    h, r, fs = v.hidden_size, s.rank, s.fully_sharded
    qkv = spec.architecture not in features().lora.tower_connector.vision_qkv_unwrapped
    block = (_column(h, [3 * h], r, tp, fs, one_slice=True) if qkv else 0) + _row(h, h, r, tp, fs)
    block += _column(h, [v.intermediate_size], r, tp, fs) + _row(v.intermediate_size, h, r, tp, fs)
    merger = _column(v.merger_in, [v.merger_in], r, tp, fs) + _row(v.merger_in, v.merger_out, r, tp, fs)
    return (v.num_layers * block + v.mergers * merger) * s.max_loras * dtype_bytes(dtype or spec.dtype)


def offloaded_bytes(requested_gib: float, rank_weight_bytes: int, embed_head_bytes: int) -> int:
    """UVAOffloader._maybe_offload_to_cpu: decoder-layer parameters move to the host until cpu_offload_gb is reached (per
    parameter, so vLLM may move up to one tensor more; the figure here is the request, the smaller saving)."""
    return max(0, min(int(requested_gib * GIB), rank_weight_bytes - embed_head_bytes))


def host_link_gbs(gpu: GPU) -> tuple[float, str]:
    """(GB/s the offloaded weights stream at, the link named): PCIe gen x lanes, or NVLink-C2C on Grace superchips,
    times the fitted efficiency (data/vllm_features.json cpu_offload)."""
    co = features().cpu_offload
    row = gpu_row(gpu.id)
    if row is not None and "NVLink-C2C" in (row.interconnect_note or ""):
        return co.c2c_gbs * co.efficiency, "NVLink-C2C"
    gen = row.pcie_gen if row is not None and row.pcie_gen else 4
    lanes = row.pcie_lanes if row is not None and row.pcie_lanes else 16
    return co.pcie_gbs_per_lane[str(gen)] * lanes * co.efficiency, f"PCIe {gen}.0 x{lanes}"


def offload_step_ms(offloaded: int, gpu: GPU) -> float:
    """Milliseconds one forward step spends reading the offloaded weights from pinned host memory."""
    return offloaded / (host_link_gbs(gpu)[0] * 1e9) * 1e3
