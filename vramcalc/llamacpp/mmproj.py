"""The multimodal projector's compute buffer: clip.cpp's warmup graph (tools/mtmd/clip.cpp clip_model_loader::warmup,
reserve_compute_meta at llama.cpp 4df29be) rebuilt op by op and replayed through ggml-alloc (galloc.py).

warmup builds the graph for one image of hparams.warmup_image_size (the projector's image_size for the SigLIP family)
and reserves it, first with flash attention (CLIP_FLASH_ATTN_TYPE_AUTO tries it; every backend modelled here runs it),
else without. The graph: build_inp (conv_2d patch embedding: im2col to F16, a matmul, a permuted copy), build_vit
(learned position embeddings, n_layer x [layer norm, Q/K/V with biases, build_attn, output projection, residual, layer
norm, GELU FFN, residual], the post layer norm) and the projector (tools/mtmd/models/siglip.cpp: Gemma 3's average
pool, RMS norm and input projection). Replayed exactly for the SigLIP projectors with that head (gemma3); for other
projector types the ViT body is replayed and the projector's own ops are covered by a margin (UNCERTAIN_MARGIN).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ggml_graph as g
from .extras import Mmproj
from .galloc import peak_bytes
from .ggml_graph import OUTPUT, Graph, T

EXACT = ("gemma3",)  # projector types whose whole warmup graph is rebuilt
# the share added where only the ViT body is replayed: the projector's ops, a warmup size of another rule
# (set_warmup_n_tokens), windowed attention or 2-D RoPE (Qwen2.5-VL, Pixtral) that this replay does not rebuild
UNCERTAIN_MARGIN = 0.5
# clip_graph_siglip / build_vit's layer norms (NORM_TYPE_NORMAL): ggml_norm, then the weight and the bias


@dataclass(frozen=True)
class MmprojCompute:
    device: int  # the compute buffer on the projector's backend
    host: int  # the CPU's share when the projector runs on a GPU (the image input, copied)
    margin: float
    image_size: int
    patches: int
    how: str


def _norm(x: T, bias: bool = True, rms: bool = False) -> T:
    cur = g.unary("RMS_NORM" if rms else "NORM", x)
    cur = g.same("MUL", cur, g.weight("F32", x.ne[0]))
    if bias:
        cur = g.same("ADD", cur, g.weight("F32", x.ne[0]))
    return cur


def _linear(x: T, n_out: int, wtype: str, bias: bool = True) -> T:
    cur = g.mul_mat(g.weight(wtype, x.ne[0], n_out), x)
    return g.same("ADD", cur, g.weight("F32", n_out)) if bias else cur


def _weight_type(mm: Mmproj, name: str, default: str = "F16") -> str:
    return next((ty for n, _, ty in mm.tensors if n == name), default)


def vit_graph(mm: Mmproj, fa: bool, image: int) -> Graph:
    """clip_graph_siglip::build for one image of image x image pixels."""
    gf = Graph()
    p, d, nh = mm.patch_size, mm.n_embd, mm.n_head
    dh = d // nh
    side = image // p
    n = side * side
    wt = _weight_type(mm, "v.blk.0.attn_q.weight")
    pt = _weight_type(mm, "v.patch_embd.weight")
    inp_raw = g.input_("F32", image, image, 3, 1, name="inp_raw")
    # ggml_conv_2d: im2col (F16 unless the kernel is BF16), matmul, reshape, permuted copy
    kern = g.weight(pt, p, p, 3, d)
    col = g.new("F32" if pt == "BF16" else "F16", 3 * p * p, side, side, 1, op="IM2COL", srcs=[kern, inp_raw])
    res = g.mul_mat(g.reshape(col, 3 * p * p, n), g.reshape(kern, 3 * p * p, d))
    res = g.reshape(res, side, side, 1, d)
    cur = g.cont(g.permute(res, 0, 1, 3, 2))
    cur = g.reshape(cur, n, d, 1)
    cur = g.cont(g.transpose(cur))
    if any(t[0] == "v.patch_embd.bias" for t in mm.tensors):
        cur = g.same("ADD", cur, g.weight("F32", d))
    cur = g.same("ADD", cur, g.weight("F32", d, n))  # learned position embeddings
    inp_l = g.reshape(cur, d, n)
    for _ in range(mm.n_layer):
        cur = _norm(inp_l)
        q = g.reshape(_linear(cur, d, wt), dh, nh, n, 1)
        k = g.reshape(_linear(cur, d, wt), dh, nh, n, 1)
        v = g.reshape(_linear(cur, d, wt), dh, nh, n, 1)
        for t in (q, k, v):  # build_attn: ggml_build_forward_order, in this order
            gf.expand(t)
        qp, kp = g.permute(q, 0, 2, 1, 3), g.permute(k, 0, 2, 1, 3)
        if fa:
            vp = g.permute(v, 0, 2, 1, 3)
            kc = g.new("F16", *kp.ne, op="CPY", srcs=[kp])
            vc = g.new("F16", *vp.ne, op="CPY", srcs=[vp])
            att = g.flash_attn_ext(qp, kc, vc, None)
            att = g.reshape(att, att.ne[0] * att.ne[1], att.ne[2] * att.ne[3])
        else:
            vp = g.cont(g.permute(v, 1, 2, 0, 3))
            kq = g.soft_max_ext(g.mul_mat(kp, qp), None)
            kqv = g.permute(g.mul_mat(vp, kq), 0, 2, 1, 3)
            att = g.cont(kqv, kqv.ne[0] * kqv.ne[1], kqv.ne[2] * kqv.ne[3])
        cur = _linear(att, d, wt)
        cur = g.same("ADD", cur, inp_l)
        inp_l = cur
        cur = _norm(cur)
        cur = _linear(cur, mm.n_ff, wt)
        cur = g.unary("UNARY", cur)  # GELU
        cur = _linear(cur, d, wt)
        cur = g.same("ADD", inp_l, cur)
        inp_l = cur
    if any(t[0].startswith("v.post_ln.") for t in mm.tensors):
        inp_l = _norm(inp_l)
    cur = g.reshape(inp_l, d, n, 1)
    if mm.projector == "gemma3":
        k_ = mm.n_merge
        cur = g.cont(g.transpose(cur), side, side, d, 1)
        cur = g.new("F32", side // k_, side // k_, d, 1, op="POOL_2D", srcs=[cur])
        cur = g.reshape(cur, cur.ne[0] * cur.ne[0], d, 1)
        cur = g.cont(g.transpose(cur))
        cur = _norm(cur, bias=False, rms=True)
        w = next(t for t in mm.tensors if t[0] == "mm.input_projection.weight")
        wproj = g.weight(w[2], *w[1])
        cur = g.mul_mat(g.cont(g.transpose(wproj)), cur)
    cur.flags |= OUTPUT
    gf.expand(cur)
    return gf


def mmproj_compute(mm: Mmproj, flash_attn: bool, alignment: int) -> MmprojCompute:
    """The warmup reservation's compute buffer (flash attention as llama-server passes -fa: auto and on try it)."""
    image = mm.image_size
    side = image // mm.patch_size
    peak = peak_bytes(vit_graph(mm, flash_attn, image), alignment)
    exact = mm.projector in EXACT
    host = 0  # every op of these graphs runs on the projector's backend: no CPU share is modelled
    how = ("clip.cpp's warmup graph replayed through ggml-alloc" if exact else
           f"the ViT body of clip.cpp's warmup graph replayed; the {mm.projector} projector's own ops are not "
           f"rebuilt (+{UNCERTAIN_MARGIN:.0%} margin)")
    return MmprojCompute(device=peak, host=host, margin=0.0 if exact else UNCERTAIN_MARGIN, image_size=image,
                         patches=side * side, how=how)
