"""Small GGUF files with a NextN / MTP block for --spec-type draft-mtp, written with the real writer (gguf.GGUFWriter)
as llama.cpp 4df29be reads them (src/models/qwen3next.cpp load_arch_hparams, load_arch_tensors; qwen35.cpp and
qwen35moe.cpp for the Qwen3.5 / 3.6 files of _qwen35, the same layout with their own projections):

- {arch}.block_count is n_layer_all: the trunk's layers and the nextn_predict_layers MTP blocks appended after them;
- an MTP block is a trunk block with full (gated) attention and the MoE FFN (load_block_trunk), plus
  blk.N.nextn.eh_proj {2 n_embd, n_embd}, blk.N.nextn.enorm and blk.N.nextn.hnorm (load_block_mtp); it is never
  recurrent (is_recr_impl is false from n_layer() on).

tools/record_llamacpp_mtp.py loads them in a real llama.cpp as llama-server does with --spec-type draft-mtp and records
what it prints (tests/data/llamacpp_mtp_runs.json); tests/test_llamacpp_mtp.py writes them again and compares.
"""

from __future__ import annotations

from pathlib import Path

import llamacpp_models as lm

# name -> the trunk's shape (tests/llamacpp_models.py's qwen3next writer) and its MTP blocks
MODELS: dict[str, tuple[lm.Shape, int]] = {
    "qwen3next-mtp": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2), 1),
    "qwen3next-mtp-q4": (lm.Shape(n_layer=8, n_head=8, head_dim=128, n_head_kv=2, weight_type="Q4_0"), 1),
    # Qwen3.5 / 3.6 dense and MoE (src/models/qwen35.cpp, qwen35moe.cpp): one MTP block (graph_mtp asserts
    # n_layer_nextn == 1); the -q4 files quantized; the files with 0 blocks carry no MTP layers (refused)
    "qwen35-mtp": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2, extra={"arch": "qwen35"}), 1),
    "qwen35-mtp-q4": (lm.Shape(n_layer=8, n_head=8, head_dim=128, n_head_kv=2, n_ff=2048, weight_type="Q4_0",
                               extra={"arch": "qwen35", "lin_v_heads": 16}), 1),
    "qwen35": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2, extra={"arch": "qwen35"}), 0),
    "qwen35moe-mtp": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2, extra={"arch": "qwen35moe"}), 1),
    "qwen35moe-mtp-q4": (lm.Shape(n_layer=8, n_head=16, head_dim=128, n_head_kv=4, weight_type="Q4_0",
                                  extra={"arch": "qwen35moe", "n_expert": 16, "n_expert_used": 4}), 1),
    "qwen35moe": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2, extra={"arch": "qwen35moe"}), 0),
    # an MTP-only sidecar (qwen35.cpp load_arch_tensors mtp_only: blk.0.attn_norm absent, the trunk's tensors
    # TENSOR_NOT_REQUIRED): the token embedding, output and the MTP block alone
    "qwen35-mtp-only": (lm.Shape(n_layer=4, n_head=8, head_dim=128, n_head_kv=2,
                                 extra={"arch": "qwen35", "mtp_only": True}), 1),
}


def _qwen35(s: lm.Shape, n_mtp: int) -> lm._Model:
    """src/models/qwen35.cpp / qwen35moe.cpp load_arch_tensors (4df29be): Gated DeltaNet layers with attn_qkv,
    attn_gate, separate ssm_beta / ssm_alpha projections, and gated full attention every 4th layer
    (full_attention_interval); a dense FFN (qwen35) or routed experts with a gated shared expert (qwen35moe); then
    the MTP blocks (load_block_mtp): a full-attention block with the trunk's FFN and nextn.eh_proj / enorm / hnorm."""
    arch = s.extra["arch"]
    m = lm._Model(arch, s)
    e = s.extra
    n_k_heads, n_v_heads, head_dim_lin = e.get("lin_k_heads", 4), e.get("lin_v_heads", 8), e.get("lin_head_dim", 64)
    n_expert, used, n_ff_exp, n_ff_sh = e.get("n_expert", 8), e.get("n_expert_used", 2), e.get("n_ff_exp", 256), 256
    key_dim, value_dim = head_dim_lin * n_k_heads, head_dim_lin * n_v_heads
    m.common(rope=s.head_dim // 4)
    m.key("rope.dimension_sections", [6, 5, 5, 0])  # required (get_key_or_arr ... true): MRoPE sections
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    if arch == "qwen35moe":
        m.shared_expert_keys(n_expert, used, n_ff_exp, n_ff_sh)
    m.key("full_attention_interval", 4)
    m.ssm_keys(4, value_dim, head_dim_lin, n_v_heads, n_k_heads)
    for i in range(s.n_layer + n_mtp):
        p = f"blk.{i}."
        if e.get("mtp_only") and i < s.n_layer:
            continue
        m.t(p + "attn_norm.weight", s.n_embd)
        m.t(p + "post_attention_norm.weight", s.n_embd)
        if i >= s.n_layer or (i + 1) % 4 == 0:
            m.attention(i, qk_norm=True, q_width=2 * s.n_head * s.head_dim)
        else:
            m.t(p + "attn_qkv.weight", s.n_embd, 2 * key_dim + value_dim)
            m.t(p + "attn_gate.weight", s.n_embd, value_dim)
            m.t(p + "ssm_conv1d.weight", 4, 2 * key_dim + value_dim, type_="F32")
            m.t(p + "ssm_dt.bias", n_v_heads)
            m.t(p + "ssm_a", n_v_heads)
            m.t(p + "ssm_beta.weight", s.n_embd, n_v_heads, type_="F16")
            m.t(p + "ssm_alpha.weight", s.n_embd, n_v_heads, type_="F16")
            m.t(p + "ssm_norm.weight", head_dim_lin)
            m.t(p + "ssm_out.weight", value_dim, s.n_embd)
        if arch == "qwen35moe":
            m.moe_ffn(i, n_expert, n_ff_exp)
            m.t(p + "ffn_gate_inp_shexp.weight", s.n_embd)
            m.t(p + "ffn_gate_shexp.weight", s.n_embd, n_ff_sh)
            m.t(p + "ffn_up_shexp.weight", s.n_embd, n_ff_sh)
            m.t(p + "ffn_down_shexp.weight", n_ff_sh, s.n_embd)
        else:
            m.dense_ffn(i)
        if i >= s.n_layer:
            m.t(p + "nextn.eh_proj.weight", 2 * s.n_embd, s.n_embd)
            m.t(p + "nextn.enorm.weight", s.n_embd)
            m.t(p + "nextn.hnorm.weight", s.n_embd)
    m.key("block_count", s.n_layer + n_mtp)
    if n_mtp:
        m.key("nextn_predict_layers", n_mtp)
    return m


def build(name: str) -> lm._Model:
    shape, n_mtp = MODELS[name]
    if "arch" in shape.extra:
        return _qwen35(shape, n_mtp)
    m = lm._qwen3next(shape)
    e = shape.extra
    n_expert, n_ff_exp, n_ff_sh = e.get("n_expert", 8), e.get("n_ff_exp", 256), 256
    for i in range(shape.n_layer, shape.n_layer + n_mtp):
        p = f"blk.{i}."
        m.t(p + "attn_norm.weight", shape.n_embd)
        m.t(p + "post_attention_norm.weight", shape.n_embd)
        m.attention(i, qk_norm=True, q_width=2 * shape.n_head * shape.head_dim)
        m.moe_ffn(i, n_expert, n_ff_exp)
        m.t(p + "ffn_gate_inp_shexp.weight", shape.n_embd)
        m.t(p + "ffn_gate_shexp.weight", shape.n_embd, n_ff_sh)
        m.t(p + "ffn_up_shexp.weight", shape.n_embd, n_ff_sh)
        m.t(p + "ffn_down_shexp.weight", n_ff_sh, shape.n_embd)
        m.t(p + "nextn.eh_proj.weight", 2 * shape.n_embd, shape.n_embd)
        m.t(p + "nextn.enorm.weight", shape.n_embd)
        m.t(p + "nextn.hnorm.weight", shape.n_embd)
    m.key("block_count", shape.n_layer + n_mtp)
    m.key("nextn_predict_layers", n_mtp)
    return m


def write(name: str, path: Path) -> Path:
    return lm.write_model(build(name), name, path)
