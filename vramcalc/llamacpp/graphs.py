"""llama.cpp's worst-case compute graphs, rebuilt op by op for the allocator replay (galloc.py).

Each builder follows llama.cpp 4df29be: src/llama-graph.cpp (build_inp_embd, build_norm, build_qkv,
build_attn / build_attn_mha, build_ffn, build_moe_ffn) and the architecture's src/models/<arch>.cpp.
graph_reserve builds them for a ubatch of n_tokens = min(n_ctx, n_ubatch) tokens, n_seqs = n_seq_max
sequences and n_outputs logits rows (llama-context.cpp sched_reserve), attending over n_kv cells.
Weights are placeholders (external to the compute buffer); only shapes matter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from math import prod

from ..data_files import load
from ..data_models import LlamaMargins
from ..memo import Memo, layers_weight
from ..spec import LayerSpec, MLPSpec, ModelSpec, SSMSpec
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
    variant: str = ""  # graph_variant: a layout the file's tensors select
    # the LoRA adapters set on the context: per adapter, (projection, rank) pairs (attn_q, ffn_up, output ...);
    # llm_graph_context::build_lora_mm adds b(a(x)), scaled, to each adapted projection
    lora: tuple[tuple[tuple[str, int], ...], ...] = ()
    n_rs_seq: int = 0  # cparams.n_rs_seq: the Gated DeltaNet layers write n_rs_seq + 1 state snapshots
    # cparams.embeddings_layer_inp: the layers whose input (res->t_layer_inp) is a graph output (draft-dflash /
    # draft-dspark and draft-eagle3 set them on the target: llama_set_embeddings_layer_inp;
    # llm_graph_result::set_outputs)
    layer_inp: tuple[int, ...] = ()
    # the context's backend samplers (llama_set_sampler; build_sampling): slots with one, and
    # cparams.n_outputs_max_per_seq (draft-mtp's MTP context: one per slot with --spec-draft-backend-sampling, 1)
    samplers: int = 0
    sampler_rows_per_seq: int = 0


# the drafts' backend chain: llama_sampler_init_top_k(10) (common/speculative.cpp common_speculative_impl_draft_mtp and
# common_speculative_impl_draft_dflash, 4df29be)
DRAFT_TOP_K = 10


def _is_quant(type_: str) -> bool:
    return type_.upper() not in ("F32", "F16", "BF16")


class Builder:
    def __init__(self, spec: ModelSpec, r: Reserve) -> None:
        self.spec, self.r = spec, r
        self.gf = Graph()
        self.h = spec.hidden_size
        self.nt = r.n_tokens
        self._inputs: dict[str, T] = {}
        self.lora = [dict(ad) for ad in r.lora]

    # --- inputs (llm_graph_input_*), created once ----------------------------------------------
    def inp(self, key: str, type_: str, *ne: int) -> T:
        if key not in self._inputs:
            self._inputs[key] = g.input_(type_, *ne, name=key)
        return self._inputs[key]

    def inp_embd(self) -> T:
        """build_inp_embd: token rows, and the unused embeddings input expanded beside them."""
        cur = g.get_rows(g.weight("F16", self.h, self.spec.vocab_size), self.inp("tokens", "I32", self.nt))
        self.gf.expand(cur)
        self.gf.expand(g.input_("F32", self.h, self.nt, name="inp_embd"))
        return cur

    # positions per token: src/llama-hparams.cpp n_pos_per_embd, 4 for the M-RoPE / interleaved M-RoPE rope types
    # (src/llama-model.cpp llama_model_rope_type: qwen35, qwen35moe IMROPE)
    pos_per_embd = 1

    def pos(self) -> T:
        return self.inp("pos", "I32", self.nt * self.pos_per_embd)

    def out_ids(self) -> T:
        return self.inp("out_ids", "I32", self.r.n_outputs)

    def norm(self, x: T, kind: str = "RMS_NORM", bias: bool = False) -> T:
        cur = g.unary(kind, x)
        cur = g.same("MUL", cur, g.weight("F32", x.ne[0]))
        if bias:
            cur = g.same("ADD", cur, g.weight("F32", x.ne[0]))
        return cur

    def mm(self, out: int, x: T, name: str = "") -> T:
        """build_lora_mm: the matmul, then each adapter's scale x b(a(x)) added (name: the projection it adapts)."""
        res = g.mul_mat(g.weight("F16", x.ne[0], out), x)
        for ad in self.lora:
            rank = ad.get(name)
            if rank:
                ab = g.mul_mat(g.weight("F16", rank, out), g.mul_mat(g.weight("F16", x.ne[0], rank), x))
                res = g.same("ADD", res, g.unary("SCALE", ab))
        return res

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
             bias_out: bool = False, wo: bool = True) -> T:
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
        if not wo:
            return cur
        cur = self.mm(self.h, cur, "attn_output")
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

    # --- recurrent state (build_rs_inp_impl, build_rs; llama-memory-recurrent.cpp) ---------------
    # graph_reserve runs on a full recurrent context: head 0, rs_z 0, n_rs = the memory's size =
    # n_seq_max sequences, the same as the ubatch's n_seqs; states are F32 rows {n_embd_r|s, mem_size}.
    def rs_ids(self) -> tuple[T, T]:
        """s_copy_main and s_copy_extra: views of one I32 input, created once per graph."""
        if "s_copy_main" not in self._inputs:
            n = self.r.n_seqs
            s_copy = self.inp("s_copy", "I32", n)
            self._inputs["s_copy_main"] = g.view(s_copy, (n,))
            self._inputs["s_copy_extra"] = g.view(s_copy, (0,), (), n * 4)
        return self._inputs["s_copy_main"], self._inputs["s_copy_extra"]

    def build_rs(self, cache: T, rows: Callable[[T, T], T] | None = None) -> T:
        """llm_graph_context::build_rs: clear state rs_z, gather the sequences' states, copy the rest."""
        main, extra = self.rs_ids()
        size, n = cache.ne[0], self.r.n_seqs
        states = g.reshape(cache, size, cache.ne[1])
        self.gf.expand(g.inplace("SCALE", g.view(states, (size,))))
        out = rows(states, main) if rows is not None else g.get_rows(states, main)
        self.gf.expand(out)
        dst = g.view(cache, (size, 0), (cache.nb[1],), n * cache.nb[1])
        self.gf.expand(g.cpy(g.get_rows(states, extra), dst))
        return out

    def mamba2(self, ssm: SSMSpec, x: T) -> T:
        """llm_build_mamba_base::build_mamba2_layer (one state snapshot: n_rs_seq 0)."""
        n, nt = self.r.n_seqs, self.nt // self.r.n_seqs
        d_inner, d_state, n_head, n_group = ssm.d_inner, ssm.d_state, ssm.n_heads, ssm.n_groups
        head_dim, ch = d_inner // n_head, ssm.conv_channels
        r_cache = g.weight("F32", (ssm.d_conv - 1) * ch, n)
        s_cache = g.weight("F32", d_state * d_inner, n)
        conv = g.reshape(self.build_rs(r_cache), ssm.d_conv - 1, ch, n)
        x = g.reshape(x, x.ne[0], nt, n)
        zx = self.mm(2 * d_inner + 2 * n_group * d_state + n_head, x)
        z = g.view(zx, (head_dim, n_head, nt, n), (head_dim * 4, zx.nb[1], zx.nb[2]))
        xbc = g.view(zx, (ch, nt, n), (zx.nb[1], zx.nb[2]), d_inner * 4)
        dt = g.view(zx, (n_head, nt, n), (zx.nb[1], zx.nb[2]), (2 * d_inner + 2 * n_group * d_state) * 4)
        conv_x = g.concat(conv, g.transpose(xbc), 0)
        last = g.view(conv_x, (ssm.d_conv - 1, ch, n), (conv_x.nb[1], conv_x.nb[2]), nt * conv_x.nb[0])
        self.gf.expand(g.cpy(last, g.view(r_cache, ((ssm.d_conv - 1) * ch, n), (r_cache.nb[1],))))
        xbc = g.unary("UNARY", g.same("ADD", g.ssm_conv(conv_x, g.weight("F32", ssm.d_conv, ch)), g.weight("F32", ch)))
        xs = g.view(xbc, (head_dim, n_head, nt, n), (head_dim * 4, xbc.nb[1], xbc.nb[2]))
        b = g.view(xbc, (d_state, n_group, nt, n), (d_state * 4, xbc.nb[1], xbc.nb[2]), d_inner * 4)
        c = g.view(xbc, (d_state, n_group, nt, n), (d_state * 4, xbc.nb[1], xbc.nb[2]), (d_inner + n_group * d_state) * 4)
        dt = g.same("ADD", g.cont(dt), g.weight("F32", n_head))
        a_w = g.weight("F32", 1, n_head)

        def scan(states: T, ids: T) -> T:
            return g.ssm_scan(g.reshape(states, d_state, head_dim, n_head, s_cache.ne[1]), xs, dt, a_w, b, c, ids)
        y_ssm = self.build_rs(s_cache, scan)
        big = d_state * d_inner
        self.gf.expand(g.cpy(g.view(y_ssm, (big, n, 1), (big * 4, big * 4 * n), prod(xs.ne) * 4),
                             g.view(s_cache, (big, n, 1), (s_cache.nb[1], n * big * 4))))
        y = g.view(y_ssm, (head_dim, n_head, nt, n), (xs.nb[1], n_head * xs.nb[1], nt * n_head * xs.nb[1]))
        y = g.same("ADD", y, g.same("MUL", xs, g.weight("F32", 1, n_head)))
        y = g.glu_split(g.cont(z), y)
        if ssm.gated_norm:
            y = self.norm(g.reshape(y, d_inner // n_group, n_group, nt, n))
        y = g.reshape(y, d_inner, nt, n)
        return g.reshape(self.mm(self.h, y), self.h, nt * n)

    def mamba1(self, ssm: SSMSpec, x: T) -> T:
        """llm_build_mamba_base::build_mamba_layer; Falcon-Mamba (ssm_dt_b_c_rms) RMS-normalises dt, B and C
        without weights; Jamba's weighted norms are not rebuilt (covered() leaves them out)."""
        n, nt = self.r.n_seqs, self.nt // self.r.n_seqs
        d_inner, d_state, dt_rank, d_conv = ssm.d_inner, ssm.d_state, ssm.dt_rank, ssm.d_conv
        r_cache = g.weight("F32", (d_conv - 1) * d_inner, n)
        s_cache = g.weight("F32", d_state * d_inner, n)
        conv = g.reshape(self.build_rs(r_cache), d_conv - 1, d_inner, n)
        x = g.reshape(x, x.ne[0], nt, n)
        xz = self.mm(2 * d_inner, x)
        xs = g.view(xz, (d_inner, nt, n), (xz.nb[1], xz.nb[2]))
        z = g.view(xz, (d_inner, nt, n), (xz.nb[1], xz.nb[2]), d_inner * 4)
        conv_x = g.concat(conv, g.transpose(xs), 0)
        last = g.view(conv_x, (d_conv - 1, d_inner, n), (conv_x.nb[1], conv_x.nb[2]), nt * conv_x.nb[0])
        self.gf.expand(g.cpy(last, g.view(r_cache, ((d_conv - 1) * d_inner * n,))))
        xs = g.unary("UNARY", g.same("ADD", g.ssm_conv(conv_x, g.weight("F32", d_conv, d_inner)),
                                     g.weight("F32", d_inner)))
        x_db = self.mm(dt_rank + 2 * d_state, xs)
        dt = g.view(x_db, (dt_rank, nt, n), (x_db.nb[1], x_db.nb[2]))
        b = g.view(x_db, (d_state, 1, nt, n), (d_state * 4, x_db.nb[1], x_db.nb[2]), dt_rank * 4)
        c = g.view(x_db, (d_state, 1, nt, n), (d_state * 4, x_db.nb[1], x_db.nb[2]), (dt_rank + d_state) * 4)
        if self.spec.model_type == "falcon_mamba":  # build_norm with no weight: RMS_NORM alone
            dt, b, c = (g.unary("RMS_NORM", t) for t in (dt, b, c))
        dt = g.same("ADD", self.mm(d_inner, dt), g.weight("F32", d_inner))
        cur = xs
        xh = g.reshape(xs, 1, d_inner, nt, n)
        a_w = g.weight("F32", d_state, d_inner)

        def scan(states: T, ids: T) -> T:
            return g.ssm_scan(g.reshape(states, d_state, 1, d_inner, n), xh, dt, a_w, b, c, ids)
        y_ssm = self.build_rs(s_cache, scan)
        big = d_state * d_inner * n
        self.gf.expand(g.cpy(g.view(y_ssm, (big,), (), xh.nb[3] * xh.ne[3]), g.view(s_cache, (big,))))
        y = g.view(y_ssm, (d_inner, nt, n), (xh.nb[2], xh.nb[3]))
        y = g.same("ADD", y, g.same("MUL", cur, g.weight("F32", d_inner)))
        y = g.glu_split(g.cont(z), y)
        return g.reshape(self.mm(self.h, y), self.h, nt * n)

    # --- feed-forward ------------------------------------------------------------------------
    def ffn(self, x: T, ff: int) -> T:
        """build_ffn, LLM_FFN_PAR: down(act(gate(x)) * up(x)); SwiGLU and GeGLU are the same GLU op."""
        up = self.mm(ff, x, "ffn_up")
        gate = self.mm(ff, x, "ffn_gate")
        return self.mm(self.h, g.glu_split(gate, up), "ffn_down")

    def finish(self, x: T, softcap: bool = False) -> Graph:
        cur = self.norm(x)
        cur.flags |= OUTPUT
        logits = self.mm(self.spec.vocab_size, cur, "output")
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


def moe_ffn(b: Builder, x: T, mlp: MLPSpec, gating: str = "softmax", norm_w: bool = True, biases: bool = False) -> T:
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
        if il in r.layer_inp:  # res->t_layer_inp[il] = inpL, an output (the dflash / eagle3 draft's target features)
            inp.flags |= OUTPUT
        sa = inp
        cur = b.norm(inp)
        q, k, v = _qkv_rope(b, layer, cur)
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


def _qkv_rope(b: Builder, layer: LayerSpec, x: T, rope: bool = True) -> tuple[T, T, T]:
    """build_qkv (separate Q, K, V projections, optional biases), the Q/K RMS norms where the layer has
    them (qwen3, gemma3), and RoPE on Q and K."""
    a = layer.attention
    assert a is not None
    out = []
    for name, heads, dim in (("attn_q", a.num_heads, a.head_dim_k), ("attn_k", a.num_kv_heads, a.head_dim_k),
                             ("attn_v", a.num_kv_heads, a.head_dim_v)):
        t = b.mm(heads * dim, x, name)
        if a.qkv_bias:
            t = g.same("ADD", t, g.weight("F32", t.ne[0]))
        out.append(g.reshape(t, dim, heads, b.nt))
    q, k, v = out
    if a.qk_norm:
        q, k = b.norm(q), b.norm(k)
    if rope:
        q, k = g.same("ROPE", q, b.pos()), g.same("ROPE", k, b.pos())
    return q, k, v


def build_falcon_h1(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/falcon-h1.cpp: attention and a Mamba2 mixer side by side on every layer, summed."""
    b = Builder(spec, r)
    inp = b.inp_embd()
    last = len(spec.layers) - 1
    for il, layer in enumerate(spec.layers):
        assert layer.ssm is not None
        sa = inp
        q, k, v = _qkv_rope(b, layer, b.norm(inp))
        attn_out = b.attn(layer, q, k, v)
        cur = g.same("ADD", attn_out, b.mamba2(layer.ssm, b.norm(inp)))
        sa = g.same("ADD", cur, sa)
        if il == last:
            sa = g.get_rows(sa, b.out_ids())
        cur = b.ffn(b.norm(sa), layer.mlp.intermediate_size)
        inp = g.same("ADD", cur, sa)
    return b.finish(inp)


def build_mamba(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/mamba.cpp (mamba and mamba2): norm, mixer, residual."""
    b = Builder(spec, r)
    inp = b.inp_embd()
    last = len(spec.layers) - 1
    for il, layer in enumerate(spec.layers):
        assert layer.ssm is not None
        cur = b.mamba2(layer.ssm, b.norm(inp)) if layer.ssm.kind == "mamba2" else b.mamba1(layer.ssm, b.norm(inp))
        if il == last:
            cur, inp = g.get_rows(cur, b.out_ids()), g.get_rows(inp, b.out_ids())
        inp = g.same("ADD", cur, inp)
    return b.finish(inp)


def build_granitehybrid(spec: ModelSpec, r: Reserve, rope: bool = True) -> Graph:
    """src/models/granite-hybrid.cpp: a Mamba2 mixer or attention (RoPE only when the GGUF says
    rope_finetuned, which Granite 4.0-H does not) per layer, then a dense FFN."""
    b = Builder(spec, r)
    inp = b.inp_embd()
    last = len(spec.layers) - 1
    for il, layer in enumerate(spec.layers):
        sa = inp
        cur = b.norm(inp)
        if layer.ssm is not None:
            cur = b.mamba2(layer.ssm, cur)
        else:
            a = layer.attention
            assert a is not None
            q, k, v = _qkv_rope(b, layer, cur, rope=rope)
            cur = b.attn(layer, q, k, v, bias_out=a.o_bias)
        if il == last:
            cur, sa = g.get_rows(cur, b.out_ids()), g.get_rows(sa, b.out_ids())
        ffn_inp = g.same("ADD", cur, sa)
        cur = b.ffn(b.norm(ffn_inp), layer.mlp.intermediate_size)
        inp = g.same("ADD", cur, ffn_inp)
    return b.finish(inp)


def build_qwen3next(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/qwen3next.cpp with delta-net-base.cpp: Gated DeltaNet layers (the fused GATED_DELTA_NET
    op, which llama.cpp uses wherever the backend has it: cparams.fused_gdn_ar/ch) and gated full
    attention, a routed MoE with a sigmoid-gated shared expert. The linear layers' input projection is
    attn_qkv + attn_gate (current convert_hf_to_gguf) or, for variant qkvz_legacy, one ssm_in."""
    b = Builder(spec, r)
    inp = b.inp_embd()
    n, nt = r.n_seqs, b.nt // r.n_seqs
    for layer in spec.layers:
        sa = inp
        cur = b.gf.expand(b.norm(inp))
        if layer.ssm is not None:
            cur = _gated_deltanet(b, layer.ssm, cur, n, nt, r.variant != "qkvz_legacy")
        else:
            cur = _gated_attention(b, layer, cur)
        cur = g.same("ADD", cur, sa)
        inp = g.same("ADD", _qwen3next_ffn(b, layer, b.norm(cur)), cur)
    h = b.norm(inp)  # res->t_h_nextn, then the output rows (embeddings_nextn_masked is false by default)
    h.flags |= OUTPUT
    cur = g.get_rows(h, b.out_ids())
    cur.flags |= OUTPUT
    logits = b.mm(spec.vocab_size, cur)
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    return b.gf


def _gated_attention(b: Builder, layer: LayerSpec, cur: T) -> T:
    """qwen3next.cpp build_layer_attn (and graph_mtp's copy of it): Q with its gate in one projection, Q/K norms,
    RoPE, attention, the sigmoid gate, the output projection."""
    a = layer.attention
    assert a is not None
    hd = a.head_dim_k
    q_full = g.reshape(b.mm(a.num_heads * hd * 2, cur), hd * 2, a.num_heads, b.nt, 1)
    q = g.view(q_full, (hd, a.num_heads, b.nt, 1), q_full.nb[1:])
    gate = g.view(q_full, (hd, a.num_heads, b.nt, 1), q_full.nb[1:], hd * 4)
    k = g.reshape(b.mm(a.num_kv_heads * hd, cur), hd, a.num_kv_heads, b.nt)
    v = g.reshape(b.mm(a.num_kv_heads * hd, cur), hd, a.num_kv_heads, b.nt)
    q = g.same("ROPE", b.norm(q), b.pos())
    k = g.same("ROPE", b.norm(k), b.pos())
    cur = b.attn(layer, q, k, v, wo=False)
    gate = g.unary("UNARY", g.cont(gate, hd * a.num_heads, b.nt))
    return b.mm(b.h, g.same("MUL", cur, gate))


def _qwen3next_ffn(b: Builder, layer: LayerSpec, post: T) -> T:
    """The routed experts with the sigmoid-gated shared expert (or a dense FFN)."""
    mlp = layer.mlp
    if mlp.kind != "moe":
        return b.ffn(post, mlp.intermediate_size)
    ffn = moe_ffn(b, post, mlp)
    if mlp.shared_intermediate_size:
        shexp = b.ffn(post, mlp.shared_intermediate_size)
        ffn = g.same("ADD", ffn, g.same("MUL", shexp, g.unary("UNARY", b.mm(1, post))))
    return ffn


def _mtp_input(b: Builder, spec: ModelSpec) -> T:
    """An MTP graph's input (qwen3next.cpp / qwen35.cpp graph_mtp, 4df29be): the token rows (get_rows on tok_embd)
    and the target's hidden rows (mtp_h_input), each RMS-normed (hnorm first, then enorm), concatenated and projected
    by eh_proj, in the order the ops are made."""
    tok = g.get_rows(g.weight("F16", b.h, spec.vocab_size), b.inp("tokens", "I32", b.nt))
    h_in = b.inp("mtp_h", "F32", b.h, b.nt)
    h_norm = b.norm(h_in)
    e_norm = b.norm(tok)
    return b.mm(b.h, g.concat(e_norm, h_norm, 0))


def build_qwen3next_mtp(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/qwen3next.cpp graph_mtp (the MTP context's LLM_GRAPH_TYPE_DECODER_MTP graph, 4df29be), spec holding
    the MTP block alone: the token rows (get_rows on tok_embd: the reserve ubatch has tokens) and the target's hidden
    rows (mtp_h_input), each RMS-normed (enorm, hnorm), concatenated and projected by eh_proj; the gated attention
    over the MTP context's own KV cache; the output rows taken before the residual; the MoE FFN with its shared
    expert; the head norm (res->t_h_nextn) and the logits."""
    b = Builder(spec, r)
    cur = _mtp_input(b, spec)
    (layer,) = spec.layers
    sa = cur
    cur = _gated_attention(b, layer, b.norm(cur))
    cur = g.get_rows(cur, b.out_ids())
    sa = g.get_rows(sa, b.out_ids())
    cur = g.same("ADD", cur, sa)
    cur = g.same("ADD", _qwen3next_ffn(b, layer, b.norm(cur)), cur)
    h = b.norm(cur)
    h.flags |= OUTPUT
    logits = b.mm(spec.vocab_size, h)
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    _sampling(b, logits)
    return b.gf


def build_qwen35(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/qwen35.cpp and qwen35moe.cpp graph (4df29be): qwen3next's layout (Gated DeltaNet layers and
    gated full attention with MRoPE, the same op shapes as RoPE) with qwen35's linear-attention projections, a
    dense FFN (qwen35) or routed experts with a sigmoid-gated shared expert (qwen35moe); the MTP blocks are not
    run (il < n_layer); the head norm is res->t_h_nextn, the output rows taken after it (embeddings_nextn_masked
    false at reserve)."""
    b = Builder(spec, r)
    b.pos_per_embd = 4  # IMROPE
    inp = b.inp_embd()
    n, nt = r.n_seqs, b.nt // r.n_seqs
    for layer in spec.layers:
        sa = inp
        cur = b.gf.expand(b.norm(inp))
        if layer.ssm is not None:
            cur = _gated_deltanet(b, layer.ssm, cur, n, nt, True, qwen35=True)
        else:
            cur = _gated_attention(b, layer, cur)
        cur = g.same("ADD", cur, sa)
        inp = g.same("ADD", _qwen3next_ffn(b, layer, b.norm(cur)), cur)
    h = b.norm(inp)
    h.flags |= OUTPUT
    cur = g.get_rows(h, b.out_ids())
    cur.flags |= OUTPUT
    logits = b.mm(spec.vocab_size, cur)
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    return b.gf


def build_qwen35_mtp(spec: ModelSpec, r: Reserve) -> Graph:
    """src/models/qwen35.cpp / qwen35moe.cpp graph_mtp (LLM_GRAPH_TYPE_DECODER_MTP, 4df29be), spec holding the
    one MTP block (the graph asserts n_layer_nextn == 1): the token rows and the target's hidden rows RMS-normed,
    concatenated and projected by eh_proj; the gated attention over the MTP context's own KV cache and its
    residual (no output-row selection inside the block, unlike qwen3next's); the FFN (dense, or the routed experts
    with the gated shared expert) and its residual; the head norm (res->t_h_nextn), then the output rows and the
    logits."""
    b = Builder(spec, r)
    b.pos_per_embd = 4  # IMROPE
    cur = _mtp_input(b, spec)
    (layer,) = spec.layers
    sa = cur
    cur = g.same("ADD", _gated_attention(b, layer, b.norm(cur)), sa)
    cur = g.same("ADD", _qwen3next_ffn(b, layer, b.norm(cur)), cur)
    h = b.norm(cur)
    h.flags |= OUTPUT
    logits = b.mm(spec.vocab_size, g.get_rows(h, b.out_ids()))
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    _sampling(b, logits)
    return b.gf


def _gated_deltanet(b: Builder, ssm: SSMSpec, x: T, n: int, nt: int, fused_qkv: bool, qwen35: bool = False) -> T:
    """qwen3next.cpp build_layer_attn_linear, build_qkvz; delta-net-base.cpp build_conv_state,
    build_recurrent_attn and build_delta_net_fused (n_rs_seq + 1 state snapshots in the op's output). qwen35:
    qwen35.cpp / qwen35moe.cpp build_layer_attn_linear, with separate ssm_beta and ssm_alpha projections and, under
    the fused GDN op (the CPU's: cparams.fused_gdn_ar/ch), no repeat of the Q/K heads."""
    hk, nk, hv, nv = ssm.head_k_dim, ssm.num_k_heads, ssm.head_v_dim, ssm.num_v_heads
    key_dim, value_dim, ch = hk * nk, hv * nv, ssm.conv_channels
    if fused_qkv:
        qkv = g.reshape(b.mm(2 * key_dim + value_dim, x), 2 * key_dim + value_dim, nt, n)
        z = b.mm(value_dim, x)
    else:
        per = 2 * hk + 2 * hv * nv // nk
        mixed = g.reshape(b.mm(2 * key_dim + 2 * value_dim, x), per, nk, nt, n)
        nb = mixed.nb[1:]
        query = g.view(mixed, (hk, nk, nt, n), nb)
        key = g.view(mixed, (hk, nk, nt, n), nb, hk * 4)
        value = g.view(mixed, (hv * nv // nk, nk, nt, n), nb, 2 * hk * 4)
        z = g.cont(g.view(mixed, (hv * nv // nk, nk, nt, n), nb, (2 * hk + hv * nv // nk) * 4))
        qkv = g.concat(g.concat(g.cont(query, key_dim, nt, n), g.cont(key, key_dim, nt, n), 0),
                       g.cont(value, value_dim, nt, n), 0)
    if qwen35:
        beta = g.unary("UNARY", g.reshape(b.mm(nv, x), 1, nv, nt, n))
        alpha = g.same("ADD", g.reshape(b.mm(nv, x), nv, nt, n), g.weight("F32", nv))
    else:
        ba = g.reshape(b.mm(2 * nv, x), 2 * nv // nk, nk, nt, n)
        beta_in = g.view(ba, (nv // nk, nk, nt, n), ba.nb[1:])
        alpha_in = g.view(ba, (nv // nk, nk, nt, n), ba.nb[1:], nv // nk * 4)
        beta = g.unary("UNARY", g.cont(beta_in))
        alpha = g.same("ADD", g.cont(alpha_in, nv, nt, n), g.weight("F32", nv))
    gate = g.same("MUL", g.unary("UNARY", alpha), g.weight("F32", nv))
    beta, gate = g.reshape(beta, 1, nv, nt, n), g.reshape(gate, 1, nv, nt, n)
    r_cache = g.weight("F32", (ssm.d_conv - 1) * ch, n)
    s_cache = g.weight("F32", hv * hv * nv, n)
    # build_conv_state
    conv = g.reshape(b.build_rs(r_cache), ssm.d_conv - 1, ch, n)
    conv_in = g.concat(conv, g.transpose(qkv), 0)
    last = g.view(conv_in, (ssm.d_conv - 1, ch, n), conv_in.nb[1:3], nt * 4)
    b.gf.expand(g.cpy(last, g.view(r_cache, ((ssm.d_conv - 1) * ch, n), (r_cache.nb[1],))))
    state = g.reshape(b.build_rs(s_cache), hv, hv, nv, n)
    mix = g.unary("UNARY", g.ssm_conv(conv_in, g.weight("F32", ssm.d_conv, ch)))
    row = (2 * key_dim + value_dim) * 4
    q = g.new("F32", hk, nk, nt, n, op="L2_NORM", srcs=[g.view(mix, (hk, nk, nt, n), (hk * 4, row, row * nt))])
    k = g.new("F32", hk, nk, nt, n, op="L2_NORM",
              srcs=[g.view(mix, (hk, nk, nt, n), (hk * 4, row, row * nt), key_dim * 4)])
    v = g.view(mix, (hv, nv, nt, n), (hv * 4, row, row * nt), 2 * key_dim * 4)
    if nk != nv and not qwen35:  # repeat-interleave Q and K heads up to the V heads
        q, k = (g.reshape(g.new("F32", hk, nv // nk, nk, nt * n, op="REPEAT", srcs=[g.reshape(t, hk, 1, nk, nt * n)]),
                          hk, nv, nt, n) for t in (q, k))
    res = g.gated_delta_net(q, k, v, gate, beta, state, b.r.n_rs_seq + 1)
    out = g.view(res, (hv, nv, nt, n), (hv * 4, hv * nv * 4, hv * nv * nt * 4))
    new_state = g.view(res, (hv, hv, nv, n), (hv * 4, hv * hv * 4, hv * hv * nv * 4), hv * nv * nt * n * 4)
    b.gf.expand(g.cpy(new_state, g.view(s_cache, (hv * hv * nv, n), (s_cache.nb[1],))))
    y = g.same("MUL", b.norm(out), g.unary("UNARY", g.reshape(z, hv, nv, nt, n)))
    cur = b.mm(b.h, g.reshape(y, value_dim, nt, n))
    return g.reshape(cur, b.h, nt * n)


def _transformer(arch: str) -> Callable[[ModelSpec, Reserve], Graph]:
    return lambda spec, r: build_transformer(spec, r, arch)


BUILDERS: dict[str, Callable[[ModelSpec, Reserve], Graph]] = {
    "deepseek2": build_deepseek2, "falcon-h1": build_falcon_h1, "mamba": build_mamba, "mamba2": build_mamba,
    "granitehybrid": build_granitehybrid, "qwen3next": build_qwen3next, "qwen3next-mtp": build_qwen3next_mtp,
    "qwen35": build_qwen35, "qwen35moe": build_qwen35, "qwen35-mtp": build_qwen35_mtp,
    "qwen35moe-mtp": build_qwen35_mtp}
BUILDERS.update({a: _transformer(a) for a in ("llama", "qwen3", "qwen3moe", "qwen2", "gemma2", "gemma3", "gpt-oss")})
# the DFlash draft context at creation (no backend samplers yet; dflash_peak for the rest)
BUILDERS["dflash"] = lambda spec, r: build_dflash(spec, r)


def _plain_attention(la: LayerSpec, mla: bool = False, gated: bool = False) -> bool:
    a = la.attention
    return a is not None and not a.k_eq_v and a.kv_shared_from is None and a.output_gate == gated \
        and (a.mla is not None) == mla


def _layer_covered(la: LayerSpec, arch: str) -> bool:
    ssm, mlp = la.ssm, la.mlp
    if arch in ("mamba", "mamba2"):  # mamba.cpp; B/C/dt norms (Falcon-Mamba, Jamba) are not rebuilt
        return la.attention is None and ssm is not None and ssm.kind == ("mamba1" if arch == "mamba" else "mamba2") \
            and not ssm.bcdt_norms and mlp.kind == "none"
    if arch == "falcon-h1":
        return ssm is not None and ssm.kind == "mamba2" and _plain_attention(la) and mlp.kind == "dense"
    if arch == "granitehybrid":  # Granite MoE variants (build_moe_ffn with a shared expert) are not rebuilt
        mixer = (ssm is not None and ssm.kind == "mamba2" and la.attention is None) or \
            (ssm is None and _plain_attention(la))
        return mixer and mlp.kind == "dense"
    if arch == "qwen3next-mtp":  # graph_mtp: one full-attention block, MoE with a shared expert
        return ssm is None and _plain_attention(la, gated=True) and la.attention is not None \
            and la.attention.qk_norm and mlp.kind == "moe" and not mlp.router_scales
    if arch in ("qwen35-mtp", "qwen35moe-mtp"):  # graph_mtp: one full-attention block, the trunk's FFN kind
        return ssm is None and _plain_attention(la, gated=True) and la.attention is not None \
            and la.attention.qk_norm and mlp.kind == ("moe" if arch == "qwen35moe-mtp" else "dense") \
            and not mlp.router_scales
    if arch in ("qwen35", "qwen35moe"):  # qwen35.cpp: dense FFN only; qwen35moe.cpp: MoE only
        mixer = (ssm is not None and ssm.kind == "gated_deltanet" and la.attention is None) or \
            (ssm is None and _plain_attention(la, gated=True) and la.attention is not None and la.attention.qk_norm)
        return mixer and mlp.kind == ("moe" if arch == "qwen35moe" else "dense") and not mlp.router_scales
    if arch == "qwen3next":
        mixer = (ssm is not None and ssm.kind == "gated_deltanet" and la.attention is None) or \
            (ssm is None and _plain_attention(la, gated=True) and la.attention is not None and la.attention.qk_norm)
        return mixer and mlp.kind in ("dense", "moe") and not mlp.router_scales
    if ssm is not None or mlp.kind == "none" or not _plain_attention(la, mla=arch == "deepseek2"):
        return False
    # routed experts with a shared expert: only deepseek2's
    return not (mlp.kind == "moe" and arch != "deepseek2" and (mlp.shared_intermediate_size or mlp.router_scales))


def covered(spec: ModelSpec, arch: str, mla_layout: str = "latent_k") -> bool:
    """The builders know these layers: attention (MLA only for deepseek2, as current llama.cpp runs it:
    the latent K-only cache, llamacpp/kv.py MLA_LAYOUTS), a dense or routed FFN (shared experts for
    deepseek2, qwen3next and qwen35moe), the Mamba-1/Mamba-2 mixers of mamba, mamba2, granitehybrid and falcon-h1,
    qwen3next's and qwen35 / qwen35moe's Gated DeltaNet and gated attention, and the MTP graphs of those three
    (arch + "-mtp"); no KV-shared attention."""
    if arch not in BUILDERS or (arch == "deepseek2" and mla_layout != "latent_k"):
        return False
    return all(_layer_covered(la, arch) for la in spec.layers)


# Architectures whose real files carry graph switches the ModelSpec does not hold, with the margin the
# verdict adds to the replay (data/llamacpp_margins.json replay_margins, with the evidence for each).
REPLAY_MARGINS: dict[str, float] = {arch: m.value for arch, m in
                                    load("llamacpp_margins.json", LlamaMargins).replay_margins.items()}


def graph_variant(arch: str, tensor_names: Iterable[str]) -> str:
    """What the file's tensors change in the graph: a qwen3next GGUF with blk.N.ssm_in (converted
    before attn_qkv/attn_gate were split out) runs build_qkvz's legacy path, up to 0.9% more memory."""
    if arch == "qwen3next" and any(n.endswith(".ssm_in.weight") for n in tensor_names):
        return "qkvz_legacy"
    return ""


# ModelSpec holds dicts: keyed by identity; per spec, its peaks by the other arguments. Bounded by the layers
# of the specs held (memo.py), and each spec's peaks by a count.
_PEAKS: Memo[tuple[ModelSpec, dict[tuple, int]]] = Memo()
_PEAKS_PER_SPEC = 1024


def reserve_peak(spec: ModelSpec, arch: str, n_ctx: int, n_ubatch: int, n_seq: int, n_outputs_max: int,
                 n_kv: int, n_kv_swa: int, unified: bool, fa: bool, type_k: str, type_v: str,
                 alignment: int = 32, mla_layout: str = "latent_k", variant: str = "",
                 lora: tuple[tuple[tuple[str, int], ...], ...] = (), n_rs_seq: int = 0,
                 layer_inp: tuple[int, ...] = (), samplers: tuple[int, int] = (0, 0)) -> int | None:
    """The compute buffer sched_reserve leaves: the larger of the pp graph (min(n_ctx, n_ubatch) tokens,
    rounded up to a multiple of the sequences; min(tokens, n_outputs_max) logits rows) and the tg graph
    (one token per sequence). samplers: (slots with a backend sampler, n_outputs_max_per_seq), Reserve.samplers.
    None when no builder covers arch."""
    if not covered(spec, arch, mla_layout):
        return None
    key = (arch, n_ctx, n_ubatch, n_seq, n_outputs_max, n_kv, n_kv_swa, unified, fa, type_k, type_v, alignment, variant,
           lora, n_rs_seq, layer_inp, samplers)
    held = _PEAKS.get(id(spec))
    if held is None or held[0] is not spec:
        held = (spec, {})
        _PEAKS.put(id(spec), held, layers_weight(len(spec.layers)))
    peaks = held[1]
    if key in peaks:
        return peaks[key]
    if len(peaks) >= _PEAKS_PER_SPEC:
        peaks.clear()
    peak = peaks[key] = _reserve_peak(spec, arch, n_ctx, n_ubatch, n_seq, n_outputs_max, n_kv, n_kv_swa, unified, fa,
                                      type_k, type_v, alignment, variant, lora, n_rs_seq, layer_inp, samplers)
    return peak


def _reserve_peak(spec: ModelSpec, arch: str, n_ctx: int, n_ubatch: int, n_seq: int, n_outputs_max: int,
                  n_kv: int, n_kv_swa: int, unified: bool, fa: bool, type_k: str, type_v: str,
                  alignment: int, variant: str = "", lora: tuple[tuple[tuple[str, int], ...], ...] = (),
                  n_rs_seq: int = 0, layer_inp: tuple[int, ...] = (), samplers: tuple[int, int] = (0, 0)) -> int:
    return max(sched_reserve_peaks(
        lambda r: BUILDERS[arch](spec, r), n_ctx, n_ubatch, n_seq, n_outputs_max, alignment,
        lambda tokens, outputs: Reserve(tokens, n_seq, outputs, n_kv, n_kv_swa, 1 if unified else n_seq, fa, type_k,
                                        type_v, variant, lora, n_rs_seq, layer_inp, *samplers)))


def sched_reserve_peaks(build: Callable[[Reserve], Graph], n_ctx: int, n_ubatch: int, n_seq: int, n_outputs_max: int,
                        alignment: int, reserve: Callable[[int, int], Reserve]) -> list[int]:
    """llama_context::sched_reserve's two graphs, the buffer each needs: the pp graph (min(n_ctx, n_ubatch) tokens,
    min(tokens, n_outputs_max) outputs; n_outputs_max 0: every token) and the tg graph (one token per sequence), the
    tokens rounded up to a multiple of the sequences (graph_reserve). reserve(tokens, outputs) makes each Reserve."""
    from .galloc import peak_bytes
    nt = min(n_ctx, n_ubatch)
    peaks = []
    for tokens, outputs in ((nt, min(nt, n_outputs_max or nt)), (n_seq, n_seq)):
        tokens = -(-tokens // n_seq) * n_seq  # llama_context::graph_reserve
        peaks.append(peak_bytes(build(reserve(tokens, outputs)), alignment))
    return peaks


@dataclass(frozen=True)
class DFlashGraph:
    """What a DFlash / DSpark draft context's decoder graph needs beyond its ModelSpec (llama.cpp 4df29be)."""
    markov_rank: int = 0  # DSpark: markov_w1 / markov_w2 {rank, n_vocab} (0: a DFlash file, no Markov head)
    conf_bias: bool = False  # conf_proj.bias present
    block_size: int = 16  # dflash.block_size (the Markov head is built only for blocks up to it)
    samplers: int = 0  # slots with a backend sampler attached (common_speculative_impl_draft_dflash, backend_sampling)
    per_seq: int = 0  # cparams.n_outputs_max_per_seq (n_max + 1 with backend sampling)
    n_outputs_max: int = 0  # cparams.n_outputs_max (n_batch: llama_model_has_encoder)


def build_dflash(spec: ModelSpec, r: Reserve, d: DFlashGraph = DFlashGraph()) -> Graph:
    """src/models/dflash.cpp graph<false> (the decoder of the Qwen3-style backbone, 4df29be) as graph_reserve builds
    it: the reserve ubatch carries tokens, so the noise-token path: their rows of the target's tok_embd (ctx_other),
    per layer the RMS norm, Q/K/V with Q/K norms and RoPE, attention over the draft's KV cache (build_attn, wo), the
    residual, the FFN and its residual; no output-row selection (every token's logits); the final norm
    (res->t_embd) and the logits on the target's output weight. A DSpark file adds build_dspark_markov_head when a
    block (n_tokens / n_seqs) is no longer than block_size. Then llm_graph_context::build_sampling with the slots'
    backend top-k samplers (src/llama-graph.cpp, src/llama-sampler.cpp llama_sampler_top_k_backend_apply)."""
    b = Builder(spec, r)
    inp = g.get_rows(g.weight("F16", b.h, spec.vocab_size), b.inp("tokens", "I32", b.nt))
    tokens = b._inputs["tokens"]
    for layer in spec.layers:
        q, k, v = _qkv_rope(b, layer, b.norm(inp))
        cur = b.attn(layer, q, k, v)
        ffn_inp = g.same("ADD", cur, inp)
        inp = g.same("ADD", b.ffn(b.norm(ffn_inp), layer.mlp.intermediate_size), ffn_inp)
    embd = b.norm(inp)
    embd.flags |= OUTPUT
    logits = b.mm(spec.vocab_size, embd, "output")
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    n_tok, n_blocks = logits.ne[1], r.n_seqs
    drafts = n_tok // n_blocks
    if d.markov_rank and drafts <= d.block_size:
        logits = _dspark_markov(b, d, logits, embd, tokens, n_blocks, drafts)
    if d.samplers:
        backend_sampling(b, d.samplers, d.per_seq, logits)
    return b.gf


def _dspark_markov(b: Builder, d: DFlashGraph, base: T, embd: T, tokens: T, n_blocks: int, drafts: int) -> T:
    """dflash.cpp build_dspark_markov_head: per block position the Markov bias w2 . w1[prev] added to the logits, the
    confidence sigmoid(conf_proj . [embd; w1[prev]]), the argmax as the next prev; the positions concatenated and
    put back in block order; the confidences broadcast to n_embd rows (res->t_h_nextn)."""
    n_vocab, rank = base.ne[0], d.markov_rank
    w1, w2 = g.weight("F16", rank, n_vocab), g.weight("F16", rank, n_vocab)
    prev = g.cont(g.view(tokens, (1, n_blocks), (drafts * tokens.nb[0],)), n_blocks)
    cat = cat_conf = None
    for i in range(drafts):
        w1_prev = g.get_rows(w1, prev)
        bias = g.mul_mat(w2, w1_prev)
        col = g.same("ADD", g.view(base, (n_vocab, n_blocks), (drafts * base.nb[1],), i * base.nb[1]), bias)
        cat = col if cat is None else g.concat(cat, col, 1)
        conf_i = g.view(embd, (embd.ne[0], n_blocks), (drafts * embd.nb[1],), i * embd.nb[1])
        feat = g.concat(g.cont(conf_i), w1_prev, 0)
        conf = g.mul_mat(g.weight("F32", feat.ne[0], 1), feat)
        if d.conf_bias:
            conf = g.same("ADD", conf, g.weight("F32", 1))
        conf = g.unary("UNARY", conf)
        cat_conf = conf if cat_conf is None else g.concat(cat_conf, conf, 1)
        if i + 1 < drafts:
            prev = g.new("I32", n_blocks, op="ARGMAX", srcs=[col])
    assert cat is not None and cat_conf is not None
    n_tok = n_blocks * drafts
    out = g.cont(g.permute(g.reshape(cat, n_vocab, n_blocks, drafts), 0, 2, 1, 3))
    out = g.reshape(out, n_vocab, n_tok)
    conf = g.cont(g.permute(g.reshape(cat_conf, 1, n_blocks, drafts), 0, 2, 1, 3))
    conf = g.new("F32", *embd.ne[:2], op="REPEAT", srcs=[g.reshape(conf, 1, n_tok)])
    conf.flags |= OUTPUT
    b.gf.expand(conf)
    out.flags |= OUTPUT
    b.gf.expand(out)
    return out


def _sampling(b: Builder, logits: T) -> None:
    """build_sampling after a graph whose context has backend samplers (Reserve.samplers; the MTP context's)."""
    if b.r.samplers:
        backend_sampling(b, b.r.samplers, b.r.sampler_rows_per_seq, logits)


def backend_sampling(b: Builder, samplers: int, per_seq: int, logits: T, top_k: int = DRAFT_TOP_K) -> None:
    """llm_graph_context::build_sampling (src/llama-graph.cpp, 4df29be) with a top-k chain on each of `samplers` slots
    (src/llama-sampler.cpp llama_sampler_top_k_backend_apply), the one builder of the DFlash drafter's and the MTP
    context's sampling nodes: the logits padded by one row; for each sampler (by slot) and each of its output rows
    (llama-context.cpp ubatch_prepare_reserve: min(n_seq_tokens, per_seq = n_outputs_max_per_seq) rows per slot,
    n_outputs in all; a slot without rows works on the first), a 1-D view of its row, top_k (I32 k) and the k logits
    it selects (get_rows), both outputs."""
    r = b.r
    n_vocab = logits.ne[0]
    padded = g.new("F32", n_vocab, logits.ne[1] + 1, op="PAD", srcs=[logits])
    n_seq_tokens = r.n_tokens // r.n_seqs
    left = r.n_outputs
    rows: list[int] = []
    for s in range(min(samplers, r.n_seqs)):
        take = min(n_seq_tokens, per_seq or n_seq_tokens, left)
        rows.append(take)
        left -= take
    row = 0
    for s in range(samplers):
        n_rows = rows[s] if s < len(rows) and rows[s] else 0
        for i in range(max(1, n_rows)):
            seq = g.view(padded, (n_vocab,), (), (row if n_rows else 0) * padded.nb[1])
            top = g.new("I32", top_k, op="TOP_K", srcs=[g.reshape(seq, n_vocab)])
            picked = g.get_rows(g.reshape(g.reshape(seq, n_vocab), 1, n_vocab), top)
            if n_rows:
                top.flags |= OUTPUT
                picked.flags |= OUTPUT
                row += 1
            b.gf.expand(picked)


def dflash_peak(spec: ModelSpec, d: DFlashGraph, n_ctx: int, n_ubatch: int, n_seq: int, n_kv: int, unified: bool,
                fa: bool, type_k: str, type_v: str, alignment: int = 32) -> int:
    """sched_reserve's compute buffer for the DFlash decoder graph: the larger of the pp graph (min(n_ctx, n_ubatch)
    tokens, min(tokens, n_outputs_max) outputs) and the tg graph (one token per sequence)."""
    return max(sched_reserve_peaks(
        lambda r: build_dflash(spec, r, d), n_ctx, n_ubatch, n_seq, d.n_outputs_max, alignment,
        lambda tokens, outputs: Reserve(tokens, n_seq, outputs, n_kv, 0, 1 if unified else n_seq, fa, type_k, type_v)))


# --- EAGLE-3 drafts (--spec-type draft-eagle3) --------------------------------------------------------------------

@dataclass(frozen=True)
class Eagle3Head:
    """What an EAGLE-3 draft GGUF sets in its graphs beyond the ModelSpec (src/models/eagle3.cpp, 4df29be)."""
    n_enc: int  # the encoder's input width: 3 x target_hidden_size (hparams.n_embd_inp_enc)
    n_vocab: int  # the vocabulary the logits are laid out in (model.vocab.n_tokens())
    n_draft_vocab: int  # the output projection's rows: d2t's length, else n_vocab
    norm_before_fc: bool = False  # enc.output_norm before fc
    norm_before_residual: bool = False  # the residual is the hidden norm's output, not the raw features
    sampler_top_k: int = 0  # the backend top-k sampler set on every slot (0: none, --no-spec-draft-backend-sampling)


def build_eagle3(spec: ModelSpec, r: Reserve, head: Eagle3Head) -> Graph:
    """src/models/eagle3.cpp graph<false>, the decoder (LLM_GRAPH_TYPE_DEFAULT, what sched_reserve reserves; 4df29be):
    the token rows (get_rows on its own token_embd or the target's) and the encoder's features (an F32 input of n_embd
    rows per token), RMS-normed (attn_norm, attn_norm_2) and concatenated; Q, K, V from the 2 n_embd columns, RoPE,
    attention over the draft's own KV cache and attn_output; the residual (the raw features, or their norm with
    norm_before_residual); the FFN and its residual, the pre-norm state an output (res->t_h_nextn); the output norm and
    the logits of every token (no output-row selection); with d2t the draft vocabulary's logits are scattered
    (ggml_set_rows) into an n_vocab block filled with -inf. Then llm_graph_context::build_sampling when a backend
    sampler is set: ggml_pad adds a row to the logits and each slot's top-k (common_speculative_impl_draft_eagle3:
    llama_sampler_init_top_k(10)) reads one row: ggml_top_k and the candidates' logits (get_rows), both outputs
    (ubatch_prepare_reserve gives each slot with a sampler n_outputs_max_per_seq = 1 row)."""
    b = Builder(spec, r)
    (layer,) = spec.layers
    tokens = b.inp("tokens", "I32", b.nt)
    feats = b.inp("embd", "F32", b.h, b.nt)
    tok = g.get_rows(g.weight("F16", b.h, head.n_vocab), tokens)
    e_norm = b.norm(tok)
    g_norm = b.norm(feats)
    sa = g_norm if head.norm_before_residual else feats
    q, k, v = _qkv_rope(b, layer, g.concat(e_norm, g_norm, 0))
    cur = b.attn(layer, q, k, v)
    ffn_inp = g.same("ADD", cur, sa)
    cur = b.ffn(b.norm(ffn_inp), layer.mlp.intermediate_size)
    cur = g.same("ADD", cur, ffn_inp)
    cur.flags |= OUTPUT
    logits = b.mm(head.n_draft_vocab, b.norm(cur), "output")
    if head.n_draft_vocab != head.n_vocab:  # d2t
        block = g.same("FILL", g.new("F32", 1, head.n_vocab, b.nt))
        d2t = g.weight("I64", head.n_draft_vocab)
        logits = g.set_rows(block, g.reshape(logits, 1, head.n_draft_vocab, b.nt), g.reshape(d2t, head.n_draft_vocab, 1, 1))
        logits = g.reshape(logits, head.n_vocab, b.nt)
    logits.flags |= OUTPUT
    b.gf.expand(logits)
    if head.sampler_top_k:  # one sampler per sequence of the batch, one row each
        backend_sampling(b, r.n_seqs, 1, logits, head.sampler_top_k)
    return b.gf


def build_eagle3_encoder(spec: ModelSpec, r: Reserve, head: Eagle3Head) -> Graph:
    """src/models/eagle3.cpp graph<true>, the encoder llama_encode runs on each chunk of target features (at most
    n_ubatch tokens): the F32 input of 3 x target_hidden_size per token, enc.output_norm with norm_before_fc, fc,
    the result an output (res->t_h_nextn)."""
    b = Builder(spec, r)
    cur = b.inp("embd", "F32", head.n_enc, b.nt)
    if head.norm_before_fc:
        cur = b.norm(cur)
    cur = b.mm(b.h, cur, "fc")
    cur.flags |= OUTPUT
    b.gf.expand(cur)
    return b.gf


def eagle3_peak(spec: ModelSpec, head: Eagle3Head, n_ctx: int, n_ubatch: int, n_seq: int, n_kv: int, unified: bool,
                fa: bool, type_k: str, type_v: str, alignment: int = 32, sweep_to: int = 0) -> int:
    """The draft context's compute buffer: sched_reserve's pp graph (min(n_ctx, n_ubatch) tokens, rounded up to a
    multiple of the slots) and tg graph (one token per slot) of the decoder, and the encoder's graph of n_ubatch
    tokens that llama_encode allocates in the same buffer. ggml-alloc grows the buffer when a graph run later needs
    more than that reservation (llama.cpp warns '~llama_context: compute buffer size of X MiB, does not match
    expectation of Y MiB'): sweep_to > 0 adds the decoder's full ubatch at every cache fill a decode sees, n_kv a
    multiple of 256 (llama_kv_cache::get_n_kv), up to sweep_to cells."""
    from .galloc import peak_bytes
    nt = min(n_ctx, n_ubatch)
    # the decoder's n_outputs_max is n_batch (a model with an encoder): every reserved token's logits
    peaks = sched_reserve_peaks(
        lambda r: build_eagle3(spec, r, head), n_ctx, n_ubatch, n_seq, 0, alignment,
        lambda tokens, outputs: Reserve(tokens, n_seq, outputs, n_kv, 0, 1 if unified else n_seq, fa, type_k, type_v))
    enc = Reserve(nt, 1, nt, n_kv, 0, 1, fa, type_k, type_v)
    peaks.append(peak_bytes(build_eagle3_encoder(spec, enc, head), alignment))
    n_stream = 1 if unified else n_seq
    for cells in range(256, min(n_kv, sweep_to) + 1, 256):
        if cells != n_kv:
            r = Reserve(nt, n_stream, nt, cells, 0, n_stream, fa, type_k, type_v)
            peaks.append(peak_bytes(build_eagle3(spec, r, head), alignment))
    return max(peaks)
