"""Small GGUF files with a NextN / MTP block for --spec-type draft-mtp, written with the real writer (gguf.GGUFWriter)
as llama.cpp 4df29be reads them (src/models/qwen3next.cpp load_arch_hparams, load_arch_tensors):

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
}


def build(name: str) -> lm._Model:
    shape, n_mtp = MODELS[name]
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
