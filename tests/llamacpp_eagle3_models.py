"""Small EAGLE-3 draft GGUFs for --spec-type draft-eagle3 (-md), written with the real writer (gguf.GGUFWriter) as
llama.cpp 4df29be reads them (src/models/eagle3.cpp load_arch_hparams, load_arch_tensors; src/llama-arch.cpp names):

- eagle3.target_layers (required, exactly 3: the target layers whose inputs the head reads) and
  eagle3.target_hidden_size (the target's n_embd); eagle3.norm_before_fc / norm_before_residual optional;
- fc {3 x target_hidden_size, n_embd}, enc.output_norm {3 x target_hidden_size} with norm_before_fc, output_norm;
  output {n_embd, n_draft_vocab} and token_embd {n_embd, n_vocab} optional (without them the target's are used),
  d2t {n_draft_vocab} (I64) when the draft vocabulary is smaller;
- one decoder block: attn_norm, attn_norm_2 (the hidden norm), attn_q/k/v from 2 n_embd, attn_output, ffn_norm,
  ffn_gate/up/down.

The targets are tests/llamacpp_models.py's llama-a and qwen3 files. tools/record_llamacpp_eagle3.py loads them in a
real llama.cpp as llama-server does (tests/data/llamacpp_eagle3_runs.json); tests/test_llamacpp_eagle3.py writes them
again and compares.
"""

from __future__ import annotations

from pathlib import Path

import llamacpp_models as lm

# name -> the draft's shape, its target_layers, target_hidden_size and the optional parts (own token_embd /
# output, a draft vocabulary with d2t, norm_before_fc, norm_before_residual); None for target_layers: the key is absent
MODELS: dict[str, tuple[lm.Shape, list[int] | None, int, dict]] = {
    # shares the target's token_embd and output (cparams.ctx_other)
    "eagle3-a": (lm.Shape(n_layer=1, n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1536), [1, 3, 4], 512, {}),
    # its own token_embd and a 2048-token draft vocabulary (output + d2t), norm_before_fc / norm_before_residual, F16
    "eagle3-own": (lm.Shape(n_layer=1, n_embd=512, n_head=8, n_head_kv=4, head_dim=64, n_ff=1024, weight_type="F16"),
                   [0, 2, 5], 512, {"tok_embd": True, "draft_vocab": 2048, "norm_before_fc": True,
                                    "norm_before_residual": True}),
    # wider than its target (n_embd 1024 from 3 x 512 features): its own token_embd and output, Q4_0 (repacked)
    "eagle3-wide": (lm.Shape(n_layer=1, n_embd=1024, n_head=8, n_head_kv=4, head_dim=128, n_ff=2816,
                             weight_type="Q4_0"), [1, 2, 3], 512, {"tok_embd": True, "output": True}),
    # a target layer beyond the llama-a target's 6 (common_speculative_impl_draft_eagle3 aborts)
    "eagle3-far": (lm.Shape(n_layer=1, n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1536), [1, 3, 9], 512, {}),
    # the last id is the target's n_layer (6): its output hidden state, the target's unmasked nextn rows
    "eagle3-last": (lm.Shape(n_layer=1, n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1536), [1, 3, 6], 512, {}),
    # no eagle3.target_layers (load_arch_hparams throws)
    "eagle3-nolayers": (lm.Shape(n_layer=1, n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1536), None, 512, {}),
}


def build(name: str) -> lm._Model:
    s, layers, n_tgt, o = MODELS[name]
    m = lm._Model("eagle3", s)
    m.key("vocab_size", s.n_vocab)
    m.key("context_length", s.n_ctx_train)
    m.key("embedding_length", s.n_embd)
    m.key("block_count", 1)
    m.key("attention.layer_norm_rms_epsilon", 1e-6)
    m.key("rope.dimension_count", s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    if layers is not None:
        m.key("target_layers", layers)
    m.key("target_hidden_size", n_tgt)
    if o.get("norm_before_fc"):
        m.key("norm_before_fc", True)
    if o.get("norm_before_residual"):
        m.key("norm_before_residual", True)
    n_enc = 3 * n_tgt
    if o.get("draft_vocab"):
        m.t("d2t", o["draft_vocab"], type_="I64")
    m.t("fc.weight", n_enc, s.n_embd)
    if o.get("norm_before_fc"):
        m.t("enc.output_norm.weight", n_enc)
    m.t("output_norm.weight", s.n_embd)
    if o.get("output") or o.get("draft_vocab"):
        m.t("output.weight", s.n_embd, o.get("draft_vocab") or s.n_vocab)
    if o.get("tok_embd"):
        m.t("token_embd.weight", s.n_embd, s.n_vocab)
    p = "blk.0."
    m.t(p + "attn_norm.weight", s.n_embd)
    m.t(p + "attn_norm_2.weight", s.n_embd)
    m.t(p + "attn_q.weight", 2 * s.n_embd, s.n_head * s.head_dim)
    m.t(p + "attn_k.weight", 2 * s.n_embd, s.n_head_kv * s.head_dim)
    m.t(p + "attn_v.weight", 2 * s.n_embd, s.n_head_kv * s.head_dim)
    m.t(p + "attn_output.weight", s.n_head * s.head_dim, s.n_embd)
    m.t(p + "ffn_norm.weight", s.n_embd)
    m.dense_ffn(0)
    return m


def write(name: str, path: Path) -> Path:
    return lm.write_model(build(name), name, path)
