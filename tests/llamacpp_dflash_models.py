"""Small DFlash / DSpark draft GGUFs for --spec-type draft-dflash / draft-dspark, written with the real writer
(gguf.GGUFWriter) as llama.cpp 4df29be reads them (src/models/dflash.cpp load_arch_hparams, load_arch_tensors, the
Qwen3-style backbone; conversion/qwen.py DFlashModel / DSparkModel write the same keys), and the qwen3 targets they
draft for (tests/llamacpp_models.py's qwen3 writer):

- dflash.target_layers: the target layers whose inputs the draft conditions on (required: 'DFlash model requires
  'target_layers' in GGUF metadata'); dflash.block_size (read by common_speculative_impl_draft_dflash, default 16);
- fc.weight {len(target_layers) x n_embd, n_embd} and enc.output_norm.weight (the encoder: feature fusion), the
  decoder's output_norm.weight and its blocks (attn_norm, attn_q/k/v/output, attn_q_norm / attn_k_norm, ffn_norm,
  ffn_gate / up / down); no token_embd (optional) nor output: the target's are used (ctx_other);
- DSpark files add markov_w1.weight / markov_w2.weight {rank, n_vocab} and conf_proj.weight {n_embd + rank, 1}
  (the Markov and confidence heads), conf_proj.bias when asked.

tools/record_llamacpp_dflash.py loads them in a real llama.cpp as llama-server does and records what it prints
(tests/data/llamacpp_dflash_runs.json); tests/test_llamacpp_dflash.py writes them again and compares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import llamacpp_models as lm

# the targets: qwen3 files (src/models/qwen3.cpp keeps res->t_layer_inp for every layer)
TARGETS: dict[str, lm.Shape] = {
    "qwen3-t": lm.Shape(n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_layer=6, n_vocab=8192),
    "qwen3-t-q4": lm.Shape(n_embd=768, n_head=12, n_head_kv=4, head_dim=64, n_ff=2048, n_layer=8, n_vocab=16384,
                           weight_type="Q4_0"),
}

# name -> (the target it drafts for, its shape, its options)
DRAFTS: dict[str, tuple[str, lm.Shape, dict[str, Any]]] = {
    "dflash-a": ("qwen3-t", lm.Shape(n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1024, n_layer=2,
                                     n_vocab=8192, weight_type="F16"),
                 {"target_layers": [1, 3, 5], "block_size": 16}),
    "dflash-q8": ("qwen3-t-q4", lm.Shape(n_embd=768, n_head=12, n_head_kv=4, head_dim=64, n_ff=1536, n_layer=3,
                                         n_vocab=16384, weight_type="Q8_0"),
                  {"target_layers": [2, 5], "block_size": 8, "tok_embd": True}),
    "dspark-a": ("qwen3-t", lm.Shape(n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1024, n_layer=2,
                                     n_vocab=8192, weight_type="F16"),
                 {"target_layers": [1, 4], "block_size": 8, "markov_rank": 64, "conf_bias": True}),
    # without target_layers: llama.cpp refuses to load it
    "dflash-nolayers": ("qwen3-t", lm.Shape(n_embd=512, n_head=8, n_head_kv=2, head_dim=64, n_ff=1024, n_layer=1,
                                            n_vocab=8192, weight_type="F16"), {"block_size": 16}),
}


def build_draft(name: str) -> lm._Model:
    _, s, o = DRAFTS[name]
    m = lm._Model("dflash", s)
    m.key("vocab_size", s.n_vocab)
    m.key("context_length", s.n_ctx_train)
    m.key("embedding_length", s.n_embd)
    m.key("block_count", s.n_layer)
    m.key("attention.layer_norm_rms_epsilon", 1e-6)
    m.key("rope.dimension_count", s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    if "target_layers" in o:
        m.key("target_layers", list(o["target_layers"]))
    m.key("block_size", o["block_size"])
    if o.get("tok_embd"):
        m.t("token_embd.weight", s.n_embd, s.n_vocab)
    n_inp = len(o.get("target_layers", [0])) * s.n_embd
    m.t("fc.weight", n_inp, s.n_embd)
    m.t("enc.output_norm.weight", s.n_embd)
    m.t("output_norm.weight", s.n_embd)
    if o.get("markov_rank"):
        r = o["markov_rank"]
        m.t("markov_w1.weight", r, s.n_vocab)
        m.t("markov_w2.weight", r, s.n_vocab)
        m.t("conf_proj.weight", s.n_embd + r, 1, type_="F32")
        if o.get("conf_bias"):
            m.t("conf_proj.bias", 1)
    m.dense_layers(qk_norm=True)
    return m


def _vocab(n_vocab: int) -> dict[str, Any]:
    """A SentencePiece-style vocabulary (llama-vocab.cpp LLAMA_VOCAB_TYPE_SPM) of n_vocab tokens: <unk>, <s>, </s>,
    the 256 byte tokens, plain pieces, and a mask token last (the draft's noise token: a vocabulary-less file has
    none, and the drafting decode needs it)."""
    toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    toks += [f"\u2581t{i}" for i in range(n_vocab - len(toks) - 1)] + ["<mask>"]
    types += [1] * (n_vocab - len(types) - 1) + [3]
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": toks,
            "tokenizer.ggml.scores": [0.0] * n_vocab, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
            "tokenizer.ggml.mask_token_id": n_vocab - 1}


def write(name: str, path: Path) -> Path:
    """The target or draft `name`, with the vocabulary of _vocab (both files the same), tensors zero."""
    import gguf
    m = lm._qwen3(TARGETS[name]) if name in TARGETS else build_draft(name)
    m.kv.pop("tokenizer.ggml.mask_token_id", None)
    w = gguf.GGUFWriter(str(path), m.arch)
    w.add_name(name)
    lm.write_kv(w, {**m.kv, **_vocab(m.s.n_vocab)})  # the scores and token types are lists: arrays
    lm.write_tensors(w, m.tensors)
    return path
