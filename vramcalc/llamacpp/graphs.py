"""llama.cpp's worst-case compute graphs, rebuilt op by op for the allocator replay (galloc.py).

Each builder follows llama.cpp 4df29be: src/llama-graph.cpp (build_inp_embd, build_norm, build_qkv,
build_attn / build_attn_mha, build_ffn, build_moe_ffn) and the architecture's src/models/<arch>.cpp.
graph_reserve builds them for a ubatch of n_tokens = min(n_ctx, n_ubatch) tokens, n_seqs = n_seq_max
sequences and n_outputs logits rows (llama-context.cpp sched_reserve), attending over n_kv cells.
Weights are placeholders (external to the compute buffer); only shapes matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..spec import LayerSpec, ModelSpec
from . import ggml_graph as g
from .ggml_graph import OUTPUT, Graph, T


@dataclass(frozen=True)
class Reserve:
    """One graph_reserve call."""
    n_tokens: int
    n_seqs: int
    n_outputs: int
    n_kv: int  # cells of the full-attention cache per stream
    n_kv_swa: int  # cells of the SWA cache per stream
    n_stream: int  # 1 with a unified cache, else n_seq_max
    fa: bool
    type_k: str
    type_v: str


def _is_quant(type_: str) -> bool:
    return type_.upper() not in ("F32", "F16", "BF16")


class Builder:
    def __init__(self, spec: ModelSpec, r: Reserve) -> None:
        self.spec, self.r = spec, r
        self.gf = Graph()
        self.h = spec.hidden_size
        self.nt = r.n_tokens
        self._inputs: dict[str, T] = {}

    # --- inputs (llm_graph_input_*), created once ----------------------------------------------
    def inp(self, key: str, type_: str, *ne) -> T:
        if key not in self._inputs:
            self._inputs[key] = g.input_(type_, *ne, name=key)
        return self._inputs[key]

    def inp_embd(self) -> T:
        """build_inp_embd: token rows, and the unused embeddings input expanded beside them."""
        cur = g.get_rows(g.weight("F16", self.h, self.spec.vocab_size), self.inp("tokens", "I32", self.nt))
        self.gf.expand(cur)
        self.gf.expand(g.input_("F32", self.h, self.nt, name="inp_embd"))
        return cur

    def pos(self) -> T:
        return self.inp("pos", "I32", self.nt)

    def out_ids(self) -> T:
        return self.inp("out_ids", "I32", self.r.n_outputs)

    def norm(self, x: T, kind: str = "RMS_NORM", bias: bool = False) -> T:
        cur = g.unary(kind, x)
        cur = g.same("MUL", cur, g.weight("F32", x.ne[0]))
        if bias:
            cur = g.same("ADD", cur, g.weight("F32", x.ne[0]))
        return cur

    def mm(self, out: int, x: T) -> T:
        return g.mul_mat(g.weight("F16", x.ne[0], out), x)

    # --- attention with the KV cache (build_attn, llm_graph_input_attn_kv) --------------------
    def mask(self, swa: bool) -> T:
        r = self.r
        n_kv = r.n_kv_swa if swa else r.n_kv
        return self.inp("mask_swa" if swa else "mask", "F16" if r.fa else "F32", n_kv, self.nt // r.n_stream, 1,
                        r.n_stream)

    def rot(self, key: str, n: int) -> T:
        return self.inp(key, "F32", n, n)

    def hadamard(self, x: T, rot: T) -> T:
        n = rot.ne[0]
        numel = x.ne[0] * x.ne[1] * x.ne[2] * x.ne[3]
        res = g.reshape(x, n, numel // n) if x.contiguous else g.cont(x, n, numel // n)
        return g.reshape(g.mul_mat(rot, res), *x.ne)

    iswa = False  # the model has sliding-window layers: llm_graph_input_attn_kv_iswa

    def attn(self, layer: LayerSpec, q: T, k: T, v: T, sinks: bool = False, swa: bool = False,
             bias_out: bool = False) -> T:
        """build_attn (KV cache): store K and V, attend over n_kv cells, project out."""
        r, a = self.r, layer.attention
        assert a is not None
        dk, dv = a.head_dim_k, a.head_dim_v
        n_kv = r.n_kv_swa if swa else r.n_kv
        ns = r.n_stream
        kv_size = n_kv
        k_rot = v_rot = None
        if _is_quant(r.type_k) and dk % 64 == 0:  # llama-kv-cache.cpp attn_rot_k
            nrot = 64
            while self.head_k_all % (nrot * 2) == 0:
                nrot *= 2
            k_rot = self.rot("k_rot_swa" if swa else "k_rot", nrot)
        if _is_quant(r.type_v) and dv % 64 == 0:
            v_rot = self.rot("v_rot_swa" if swa else "v_rot", 64)
        if k_rot is not None:
            q = self.hadamard(q, k_rot)
            k = self.hadamard(k, k_rot)
        if v_rot is not None:
            v = self.hadamard(v, v_rot)
        for t in ((q, k, v) if self.iswa else (q, v, k)):  # build_attn: the iswa variant stores K first
            self.gf.expand(t)
        tk, tv = r.type_k.upper(), r.type_v.upper()
        kc = g.weight(tk, a.num_kv_heads * dk, kv_size, ns)
        vc = g.weight(tv, a.num_kv_heads * dv, kv_size, ns)
        k_idx = self.inp("k_idxs_swa" if swa else "k_idxs", "I64", self.nt)
        v_trans = not r.fa
        v_idx = self.inp("v_idxs_swa" if swa else "v_idxs", "I64",
                         self.nt * (self.kv_v_max if v_trans else 1))
        k2 = g.view(k, (dk * a.num_kv_heads, self.nt), (k.nb[2],))
        kdst = g.reshape(kc, dk * a.num_kv_heads, kv_size * ns) if ns > 1 else kc
        self.gf.expand(g.set_rows(kdst, k2, k_idx))
        if not v_trans:
            v2 = g.view(v, (dv * a.num_kv_heads, self.nt), (v.nb[2],))
            vdst = g.reshape(vc, dv * a.num_kv_heads, kv_size * ns) if ns > 1 else vc
            self.gf.expand(g.set_rows(vdst, v2, v_idx))
        else:
            numel = dv * a.num_kv_heads * self.nt
            v2 = g.reshape(v, dv * a.num_kv_heads, self.nt) if v.contiguous else g.cont(v, dv * a.num_kv_heads, self.nt)
            vview = g.reshape(vc, 1, a.num_kv_heads * dv * kv_size * ns)
            self.gf.expand(g.set_rows(vview, g.reshape(v2, 1, numel), v_idx))
        mask = self.mask(swa)
        rk = g.ggml_type(tk)
        kview = g.view(kc, (dk, a.num_kv_heads, n_kv, ns),
                       (dk // rk.block * rk.block_bytes, a.num_kv_heads * dk // rk.block * rk.block_bytes,
                        a.num_kv_heads * dk * kv_size // rk.block * rk.block_bytes))
        rv = g.ggml_type(tv)
        if not v_trans:
            vview = g.view(vc, (dv, a.num_kv_heads, n_kv, ns),
                           (dv // rv.block * rv.block_bytes, a.num_kv_heads * dv // rv.block * rv.block_bytes,
                            a.num_kv_heads * dv * kv_size // rv.block * rv.block_bytes))
        else:
            vview = g.view(vc, (n_kv, a.num_kv_heads, dv, ns),
                           (kv_size * dv * rv.block_bytes, kv_size * rv.block_bytes,
                            kv_size * a.num_kv_heads * dv * rv.block_bytes))
        sink = g.weight("F32", a.num_heads) if sinks else None
        cur = self.mha(q, kview, vview, mask, sink)
        if v_rot is not None:
            cur = self.hadamard(cur, v_rot)
        cur = self.mm(self.h, cur)
        if bias_out:
            cur = g.same("ADD", cur, g.weight("F32", self.h))
        return cur

    def mha(self, q: T, k: T, v: T, mask: T, sinks: T | None) -> T:
        """build_attn_mha."""
        r = self.r
        ns = k.ne[3]
        v_trans = v.nb[1] > v.nb[2]
        q = g.view(q, (q.ne[0], q.ne[1], q.ne[2] // ns, ns), (q.nb[1], q.nb[2], q.nb[3] // ns))
        q = g.permute(q, 0, 2, 1, 3)
        k = g.permute(k, 0, 2, 1, 3)
        v = g.permute(v, 0, 2, 1, 3)
        if r.fa:
            if v_trans:
                v = g.transpose(v)
            cur = g.flash_attn_ext(q, k, v, mask, sinks)
            cur = g.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
        else:
            kq = g.mul_mat(k, q)
            kq = g.soft_max_ext(kq, mask, sinks)
            kqv = g.mul_mat(v, kq)
            cur = g.permute(kqv, 0, 2, 1, 3)
            cur = g.cont(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
        self.gf.expand(cur)
        return cur

    # --- feed-forward ------------------------------------------------------------------------
    def ffn(self, x: T, ff: int) -> T:
        """build_ffn, LLM_FFN_PAR: down(act(gate(x)) * up(x)); SwiGLU and GeGLU are the same GLU op."""
        up = self.mm(ff, x)
        gate = self.mm(ff, x)
        return self.mm(self.h, g.glu_split(gate, up))

    def finish(self, x: T, softcap: bool = False) -> Graph:
        cur = self.norm(x)
        cur.flags |= OUTPUT
        logits = self.mm(self.spec.vocab_size, cur)
        if softcap:  # gemma2: scale, tanh, scale (in place)
            logits = g.unary("SCALE", g.unary("UNARY", g.unary("SCALE", logits)))
        logits.flags |= OUTPUT
        self.gf.expand(logits)
        return self.gf

    @property
    def head_k_all(self) -> int:
        return max(la.attention.head_dim_k for la in self.spec.layers if la.attention is not None)

    @property
    def kv_v_max(self) -> int:
        return max(la.attention.num_kv_heads * la.attention.head_dim_v for la in self.spec.layers
                   if la.attention is not None)


def moe_ffn(b: Builder, x: T, mlp, gating: str = "softmax", norm_w: bool = True, biases: bool = False) -> T:
    """build_moe_ffn: router, top-k (argsort + view), weights, MUL_MAT_ID per expert matrix, weighted sum."""
    n_exp, k = mlp.num_experts, mlp.experts_per_token
    nt = x.ne[1]
    logits = b.mm(n_exp, x)
    if biases:
        logits = g.same("ADD", logits, g.weight("F32", n_exp))
    probs = g.soft_max_ext(logits, None) if gating == "softmax" else \
        g.unary("UNARY", logits) if gating == "sigmoid" else logits
    selection = g.same("ADD", probs, g.weight("F32", n_exp)) if mlp.router_score_bias else probs
    top = g.view(g.new("I32", n_exp, nt, op="ARGSORT", srcs=[selection]), (k, nt), (n_exp * 4,))
    weights = g.get_rows(g.reshape(probs, 1, n_exp, nt), top)
    if gating == "softmax_weight":
        weights = g.reshape(g.soft_max_ext(g.reshape(weights, k, nt), None), 1, k, nt)
    if norm_w:
        w2 = g.reshape(weights, k, nt)
        total = g.new("F32", 1, nt, op="SUM_ROWS", srcs=[w2])
        clamped = g._view(total, total.ne, total.nb, 0, "CLAMP")
        weights = g.reshape(g.same("DIV", w2, clamped), 1, k, nt)
    b.gf.expand(weights)
    cur = g.reshape(x, x.ne[0], 1, nt)
    ff = mlp.expert_intermediate_size
    up = g.mul_mat_id(g.weight("F16", x.ne[0], ff, n_exp), cur, top)
    if biases:
        up = g.new("F32", *up.ne, op="ADD_ID", srcs=[up, g.weight("F32", ff, n_exp), top])
    gate = g.mul_mat_id(g.weight("F16", x.ne[0], ff, n_exp), cur, top)
    if biases:
        gate = g.new("F32", *gate.ne, op="ADD_ID", srcs=[gate, g.weight("F32", ff, n_exp), top])
    act = g.glu_split(gate, up)
    experts = g.mul_mat_id(g.weight("F16", ff, x.ne[0], n_exp), act, top)
    if biases:
        experts = g.new("F32", *experts.ne, op="ADD_ID", srcs=[experts, g.weight("F32", x.ne[0], n_exp), top])
    experts = g.same("MUL", experts, weights)
    b.gf.expand(experts)
    views = [g.view(experts, (x.ne[0], nt), (experts.nb[2],), i * experts.nb[1]) for i in range(k)]
    for v in views:
        b.gf.expand(v)
    out = views[0]
    for v in views[1:]:
        out = g.same("ADD", out, v)
        b.gf.expand(out)
    if k == 1:
        out = g.cont(out)
    return out


def build_transformer(spec: ModelSpec, r: Reserve, arch: str) -> Graph:
    """src/models/llama.cpp, qwen3.cpp, qwen3moe.cpp, gemma2.cpp, gemma3.cpp, openai-moe.cpp: one
    attention block and one FFN (dense or MoE) per layer; the per-architecture extras are below."""
    b = Builder(spec, r)
    gemma = arch in ("gemma2", "gemma3")
    oai = arch == "gpt-oss"
    b.iswa = any(la.attention is not None and la.attention.kind == "sliding" for la in spec.layers)
    inp = b.inp_embd()
    if gemma:
        inp = g.unary("SCALE", inp)
    last = len(spec.layers) - 1
    for il, layer in enumerate(spec.layers):
        a = layer.attention
        assert a is not None
        sa = inp
        cur = b.norm(inp)
        q = b.mm(a.num_heads * a.head_dim_k, cur)
        if a.qkv_bias:
            q = g.same("ADD", q, g.weight("F32", q.ne[0]))
        k = b.mm(a.num_kv_heads * a.head_dim_k, cur)
        if a.qkv_bias:
            k = g.same("ADD", k, g.weight("F32", k.ne[0]))
        v = b.mm(a.num_kv_heads * a.head_dim_v, cur)
        if a.qkv_bias:
            v = g.same("ADD", v, g.weight("F32", v.ne[0]))
        q = g.reshape(q, a.head_dim_k, a.num_heads, b.nt)
        k = g.reshape(k, a.head_dim_k, a.num_kv_heads, b.nt)
        v = g.reshape(v, a.head_dim_v, a.num_kv_heads, b.nt)
        if a.qk_norm:
            q = b.norm(q)
        q = g.same("ROPE", q, b.pos())
        if a.qk_norm:
            k = b.norm(k)
        k = g.same("ROPE", k, b.pos())
        if gemma:
            q = g.unary("SCALE", q)
        cur = b.attn(layer, q, k, v, sinks=a.sinks, swa=a.kind == "sliding", bias_out=a.o_bias)
        if il == last and not oai:
            cur = g.get_rows(cur, b.out_ids())
            sa = g.get_rows(sa, b.out_ids())
        if gemma:
            cur = b.norm(cur)
        ffn_inp = g.same("ADD", cur, sa)
        cur = b.norm(ffn_inp)
        if layer.mlp.kind == "moe":
            cur = moe_ffn(b, cur, layer.mlp, gating="softmax_weight" if oai else "softmax", norm_w=not oai,
                          biases=oai)
        else:
            cur = b.ffn(cur, layer.mlp.intermediate_size)
        if gemma:
            cur = b.norm(cur)
        inp = g.same("ADD", cur, ffn_inp)
    if oai:  # res->t_h_nextn: the last hidden state is kept as a graph output
        inp.flags |= OUTPUT
        inp = g.get_rows(inp, b.out_ids())
    return b.finish(inp, softcap=arch == "gemma2")


def build_deepseek2(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/deepseek2.cpp with MLA (K-only cache of kv_lora + rope; the absorbed Q and the
    v_mla decompression; build_attn for llm_graph_input_attn_k: V is a view of the K cache)."""
    b = Builder(spec, r)
    inp = b.inp_embd()
    nt, last = b.nt, len(spec.layers) - 1
    ns = r.n_stream
    for il, layer in enumerate(spec.layers):
        a = layer.attention
        assert a is not None and a.mla is not None
        m = a.mla
        nh, dk = a.num_heads, m.qk_nope_head_dim + m.qk_rope_head_dim
        sa = inp
        cur = b.norm(inp)
        if m.q_lora_rank:
            q = b.mm(nh * dk, b.norm(b.mm(m.q_lora_rank, cur)))
        else:
            q = b.mm(nh * dk, cur)
        q_nope = g.view(q, (m.qk_nope_head_dim, nh, nt), (dk * 4, dk * 4 * nh))
        q_pe = g.view(q, (m.qk_rope_head_dim, nh, nt), (dk * 4, dk * 4 * nh), m.qk_nope_head_dim * 4)
        kv_pe = b.mm(m.kv_lora_rank + m.qk_rope_head_dim, cur)
        kv = g.view(kv_pe, (m.kv_lora_rank, nt), (kv_pe.nb[1],))
        k_pe = g.view(kv_pe, (m.qk_rope_head_dim, 1, nt), (kv_pe.nb[1], kv_pe.nb[1]), m.kv_lora_rank * 4)
        q_pe = g.same("ROPE", q_pe, b.pos())
        k_pe = g.same("ROPE", k_pe, b.pos())
        kv = b.norm(kv)
        absorbed = g.mul_mat(g.weight("F16", m.qk_nope_head_dim, m.kv_lora_rank, nh), g.permute(q_nope, 0, 2, 1, 3))
        qc = g.concat(g.permute(absorbed, 0, 2, 1, 3), q_pe, 0)
        vc = g.reshape(kv, m.kv_lora_rank, 1, nt)
        kc = g.concat(vc, k_pe, 0)
        for t in (qc, vc, kc):
            b.gf.expand(t)
        width = m.kv_lora_rank + m.qk_rope_head_dim
        tk = r.type_k.upper()
        cache = g.weight(tk, width, r.n_kv, ns)
        k_idx = b.inp("k_idxs", "I64", nt)
        dst = g.reshape(cache, width, r.n_kv * ns) if ns > 1 else cache
        b.gf.expand(g.set_rows(dst, g.view(kc, (width, nt), (kc.nb[2],)), k_idx))
        row = g.ggml_type(tk)
        rb = width // row.block * row.block_bytes
        kview = g.view(cache, (width, 1, r.n_kv, ns), (rb, rb, rb * r.n_kv))
        vview = g.view(kview, (m.kv_lora_rank, 1, r.n_kv, ns), kview.nb[1:])
        v_mla = g.weight("F16", m.kv_lora_rank, m.v_head_dim, nh)
        cur = _mha_mla(b, qc, kview, vview, b.mask(False), v_mla)
        cur = b.mm(b.h, cur)
        if il == last:
            cur = g.get_rows(cur, b.out_ids())
            sa = g.get_rows(sa, b.out_ids())
        ffn_inp = g.same("ADD", cur, sa)
        cur = b.norm(ffn_inp)
        if layer.mlp.kind == "moe":
            sig = layer.mlp.router_score_bias
            moe = moe_ffn(b, cur, layer.mlp, gating="sigmoid" if sig else "softmax", norm_w=sig)
            cur = g.same("ADD", moe, b.ffn(cur, layer.mlp.shared_intermediate_size)) \
                if layer.mlp.shared_intermediate_size else moe
        else:
            cur = b.ffn(cur, layer.mlp.intermediate_size)
        inp = g.same("ADD", cur, ffn_inp)
    return b.finish(inp)


def _mha_mla(b: Builder, q: T, k: T, v: T, mask: T, v_mla: T) -> T:
    """build_attn_mha with v_mla: attention in the latent space, then per-head decompression."""
    ns = k.ne[3]
    q = g.view(q, (q.ne[0], q.ne[1], q.ne[2] // ns, ns), (q.nb[1], q.nb[2], q.nb[3] // ns))
    q = g.permute(q, 0, 2, 1, 3)
    k = g.permute(k, 0, 2, 1, 3)
    v = g.permute(v, 0, 2, 1, 3)
    if b.r.fa:
        cur = g.flash_attn_ext(q, k, v, mask)
        cur = g.permute(g.mul_mat(v_mla, g.permute(cur, 0, 2, 1, 3)), 0, 2, 1, 3)
        cur = g.cont(cur)
        cur = g.reshape(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
    else:
        kq = g.soft_max_ext(g.mul_mat(k, q), mask)
        v = g.cont(g.transpose(v))
        kqv = g.mul_mat(v_mla, g.mul_mat(v, kq))
        cur = g.permute(kqv, 0, 2, 1, 3)
        cur = g.cont(cur, cur.ne[0] * cur.ne[1], cur.ne[2] * cur.ne[3])
    b.gf.expand(cur)
    return cur


def _transformer(arch: str) -> Callable[[ModelSpec, Reserve], Graph]:
    return lambda spec, r: build_transformer(spec, r, arch)


BUILDERS: dict[str, Callable[[ModelSpec, Reserve], Graph]] = {"deepseek2": build_deepseek2}
BUILDERS.update({a: _transformer(a) for a in ("llama", "qwen3", "qwen3moe", "qwen2", "gemma2", "gemma3", "gpt-oss")})


def covered(spec: ModelSpec, arch: str, mla_layout: str = "latent_k") -> bool:
    """The builders know these layers: attention (MLA only for deepseek2, as current llama.cpp runs it:
    the latent K-only cache, llamacpp/kv.py MLA_LAYOUTS) and a dense or routed FFN (shared experts only
    for deepseek2); no recurrent mixers, gated or KV-shared attention."""
    if arch not in BUILDERS or (arch == "deepseek2" and mla_layout != "latent_k"):
        return False
    for la in spec.layers:
        a = la.attention
        if a is None or la.ssm is not None or a.output_gate or a.k_eq_v or a.kv_shared_from is not None:
            return False
        if (a.mla is not None) != (arch == "deepseek2") or la.mlp.kind == "none":
            return False
        if la.mlp.kind == "moe" and arch != "deepseek2" and (la.mlp.shared_intermediate_size or la.mlp.router_scales):
            return False
    return True


_PEAKS: dict[tuple, tuple[ModelSpec, int]] = {}  # ModelSpec holds dicts: keyed by identity


def reserve_peak(spec: ModelSpec, arch: str, n_ctx: int, n_ubatch: int, n_seq: int, n_outputs_max: int,
                 n_kv: int, n_kv_swa: int, unified: bool, fa: bool, type_k: str, type_v: str,
                 alignment: int = 32, mla_layout: str = "latent_k") -> int | None:
    """The compute buffer sched_reserve leaves: the larger of the pp graph (min(n_ctx, n_ubatch) tokens,
    rounded up to a multiple of the sequences; min(tokens, n_outputs_max) logits rows) and the tg graph
    (one token per sequence). None when no builder covers arch."""
    if not covered(spec, arch, mla_layout):
        return None
    key = (id(spec), arch, n_ctx, n_ubatch, n_seq, n_outputs_max, n_kv, n_kv_swa, unified, fa, type_k, type_v, alignment)
    hit = _PEAKS.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    if len(_PEAKS) > 1024:
        _PEAKS.clear()
    peak = _reserve_peak(spec, arch, n_ctx, n_ubatch, n_seq, n_outputs_max, n_kv, n_kv_swa, unified, fa, type_k,
                         type_v, alignment)
    _PEAKS[key] = (spec, peak)
    return peak


def _reserve_peak(spec: ModelSpec, arch: str, n_ctx: int, n_ubatch: int, n_seq: int, n_outputs_max: int,
                  n_kv: int, n_kv_swa: int, unified: bool, fa: bool, type_k: str, type_v: str,
                  alignment: int) -> int:
    from .galloc import peak_bytes
    nt = min(n_ctx, n_ubatch)
    peaks = []
    for tokens, outputs in ((nt, min(nt, n_outputs_max)), (n_seq, n_seq)):
        tokens = -(-tokens // n_seq) * n_seq  # llama_context::graph_reserve
        r = Reserve(tokens, n_seq, outputs, n_kv, n_kv_swa, 1 if unified else n_seq, fa, type_k, type_v)
        peaks.append(peak_bytes(BUILDERS[arch](spec, r), alignment))
    return max(peaks)
