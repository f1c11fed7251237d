"""Small GGUF models of every architecture family the llama.cpp lane supports, written with the
real writer (gguf.GGUFWriter). tools/record_llamacpp.py loads them in a real llama.cpp and records
the buffer sizes it prints (tests/data/llamacpp_runs.json); tests/test_llamacpp_oracle.py writes the
same files again and compares our predictions with those recordings.

Tensor names and shapes follow llama.cpp's loaders (src/models/<arch>.cpp load_arch_tensors at the
recorded build); llama.cpp refuses a file whose tensors differ, so a successful load checks them.
The tensor data are zeros: llama.cpp sizes its buffers from the header, and the recordings only
create a context (graph reservation), never run a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import json
from typing import Any

import numpy as np
import gguf

Q = gguf.GGMLQuantizationType


@dataclass
class Shape:
    n_embd: int = 512
    n_head: int = 8
    n_head_kv: int = 2
    head_dim: int = 64
    n_ff: int = 1536
    n_layer: int = 6
    n_vocab: int = 8192
    n_ctx_train: int = 16384
    tied: bool = False
    weight_type: str = "Q8_0"  # 2-D weights whose rows allow it; 1-D tensors F32
    extra: dict[str, Any] = field(default_factory=dict)


class _Model:
    def __init__(self, arch: str, s: Shape):
        self.arch, self.s = arch, s
        self.kv: dict[str, Any] = {}
        self.tensors: list[tuple[str, tuple[int, ...], str]] = []  # name, ne (ggml order), type

    def key(self, k: str, v: Any) -> None:
        self.kv[f"{self.arch}.{k}"] = v

    def t(self, name: str, *ne: int, type_: str | None = None) -> None:
        if type_ is None:
            wt = self.s.weight_type
            block = gguf.GGML_QUANT_SIZES[Q[wt]][0]
            type_ = wt if len(ne) >= 2 and ne[0] % block == 0 else ("F32" if len(ne) == 1 else "F16")
        self.tensors.append((name, tuple(int(x) for x in ne), type_))

    def common(self, rope: int | None = None) -> None:
        s = self.s
        self.key("vocab_size", s.n_vocab)
        self.key("context_length", s.n_ctx_train)
        self.key("embedding_length", s.n_embd)
        self.key("block_count", s.n_layer)
        self.key("attention.layer_norm_rms_epsilon", 1e-6)
        if rope:
            self.key("rope.dimension_count", rope)
        self.t("token_embd.weight", s.n_embd, s.n_vocab)
        self.t("output_norm.weight", s.n_embd)
        if not s.tied:
            self.t("output.weight", s.n_embd, s.n_vocab)

    def attention(self, i: int, qk_norm: bool = False, q_width: int | None = None) -> None:
        s = self.s
        p = f"blk.{i}."
        self.t(p + "attn_q.weight", s.n_embd, q_width or s.n_head * s.head_dim)
        self.t(p + "attn_k.weight", s.n_embd, s.n_head_kv * s.head_dim)
        self.t(p + "attn_v.weight", s.n_embd, s.n_head_kv * s.head_dim)
        self.t(p + "attn_output.weight", s.n_head * s.head_dim, s.n_embd)
        if qk_norm:
            self.t(p + "attn_q_norm.weight", s.head_dim)
            self.t(p + "attn_k_norm.weight", s.head_dim)

    def heads(self, per_layer_kv: list[int] | None = None) -> None:
        s = self.s
        self.key("attention.head_count", s.n_head)  # a scalar: llama.cpp sizes heads from n_head(0)
        self.key("attention.head_count_kv", s.n_head_kv if per_layer_kv is None else per_layer_kv)
        self.key("attention.key_length", s.head_dim)
        self.key("attention.value_length", s.head_dim)

    def dense_layers(self, qk_norm: bool = False) -> None:
        """Every layer a pre-norm attention block and a dense (gate, up, down) FFN: llama, qwen3, dflash."""
        for i in range(self.s.n_layer):
            self.t(f"blk.{i}.attn_norm.weight", self.s.n_embd)
            self.attention(i, qk_norm=qk_norm)
            self.t(f"blk.{i}.ffn_norm.weight", self.s.n_embd)
            self.dense_ffn(i)

    def dense_ffn(self, i: int, n_ff: int | None = None) -> None:
        s, p = self.s, f"blk.{i}."
        f = n_ff or s.n_ff
        self.t(p + "ffn_gate.weight", s.n_embd, f)
        self.t(p + "ffn_up.weight", s.n_embd, f)
        self.t(p + "ffn_down.weight", f, s.n_embd)

    def moe_ffn(self, i: int, n_expert: int, n_ff_exp: int, bias: bool = False) -> None:
        s, p = self.s, f"blk.{i}."
        self.t(p + "ffn_gate_inp.weight", s.n_embd, n_expert, type_="F32")
        self.t(p + "ffn_gate_exps.weight", s.n_embd, n_ff_exp, n_expert)
        self.t(p + "ffn_up_exps.weight", s.n_embd, n_ff_exp, n_expert)
        self.t(p + "ffn_down_exps.weight", n_ff_exp, s.n_embd, n_expert)
        if bias:
            self.t(p + "ffn_gate_inp.bias", n_expert)
            self.t(p + "ffn_gate_exps.bias", n_ff_exp, n_expert, type_="F32")
            self.t(p + "ffn_up_exps.bias", n_ff_exp, n_expert, type_="F32")
            self.t(p + "ffn_down_exps.bias", s.n_embd, n_expert, type_="F32")

    def mamba2_mixer(self, i: int, d_inner: int, d_state: int, n_group: int, n_ssm_head: int, d_conv: int = 4,
                     norm: bool = True, conv_bias: bool = True) -> None:
        s, p = self.s, f"blk.{i}."
        conv_dim = d_inner + 2 * n_group * d_state
        self.t(p + "ssm_in.weight", s.n_embd, d_inner + conv_dim + n_ssm_head)
        self.t(p + "ssm_conv1d.weight", d_conv, conv_dim, type_="F32")
        if conv_bias:
            self.t(p + "ssm_conv1d.bias", conv_dim)
        self.t(p + "ssm_dt.bias", n_ssm_head)
        self.t(p + "ssm_a", 1, n_ssm_head, type_="F32")
        self.t(p + "ssm_d", 1, n_ssm_head, type_="F32")
        if norm:
            self.t(p + "ssm_norm.weight", d_inner // n_group, n_group, type_="F32")
        self.t(p + "ssm_out.weight", d_inner, s.n_embd)

    def shared_expert_keys(self, n_expert: int, used: int, n_ff_exp: int, n_ff_sh: int) -> None:
        """The routed experts' and the shared expert's keys (qwen3next / qwen35moe load_arch_hparams)."""
        self.key("expert_count", n_expert)
        self.key("expert_used_count", used)
        self.key("expert_feed_forward_length", n_ff_exp)
        self.key("expert_shared_feed_forward_length", n_ff_sh)

    def ssm_keys(self, d_conv: int, d_inner: int, d_state: int, dt_rank: int, n_group: int | None) -> None:
        self.key("ssm.conv_kernel", d_conv)
        self.key("ssm.inner_size", d_inner)
        self.key("ssm.state_size", d_state)
        self.key("ssm.time_step_rank", dt_rank)
        if n_group is not None:
            self.key("ssm.group_count", n_group)


# ---- families (src/models/<arch>.cpp load_arch_tensors) ----

def _llama(s: Shape) -> _Model:
    m = _Model("llama", s)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.dense_layers()
    return m


def _qwen3(s: Shape) -> _Model:
    m = _Model("qwen3", s)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.dense_layers(qk_norm=True)
    return m


def _qwen3moe(s: Shape) -> _Model:
    m = _Model("qwen3moe", s)
    n_expert, used, n_ff_exp = s.extra.get("n_expert", 8), s.extra.get("n_expert_used", 2), s.extra.get("n_ff_exp", 512)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.key("expert_count", n_expert)
    m.key("expert_used_count", used)
    m.key("expert_feed_forward_length", n_ff_exp)
    for i in range(s.n_layer):
        m.t(f"blk.{i}.attn_norm.weight", s.n_embd)
        m.attention(i, qk_norm=True)
        m.t(f"blk.{i}.ffn_norm.weight", s.n_embd)
        m.moe_ffn(i, n_expert, n_ff_exp)
    return m


def _gemma(arch: str, s: Shape) -> _Model:
    m = _Model(arch, s)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.key("attention.sliding_window", s.extra.get("window", 512))
    if arch == "gemma2":
        m.key("attn_logit_softcapping", 50.0)
        m.key("final_logit_softcapping", 30.0)
    for i in range(s.n_layer):
        m.t(f"blk.{i}.attn_norm.weight", s.n_embd)
        m.attention(i, qk_norm=arch == "gemma3")
        m.t(f"blk.{i}.post_attention_norm.weight", s.n_embd)
        m.t(f"blk.{i}.ffn_norm.weight", s.n_embd)
        m.dense_ffn(i)
        m.t(f"blk.{i}.post_ffw_norm.weight", s.n_embd)
    return m


def _gpt_oss(s: Shape) -> _Model:
    m = _Model("gpt-oss", s)
    n_expert, used, n_ff_exp = s.extra.get("n_expert", 8), s.extra.get("n_expert_used", 2), s.extra.get("n_ff_exp", 512)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", n_ff_exp)
    m.key("expert_count", n_expert)
    m.key("expert_used_count", used)
    m.key("expert_feed_forward_length", n_ff_exp)
    m.key("attention.sliding_window", s.extra.get("window", 128))
    for i in range(s.n_layer):
        p = f"blk.{i}."
        m.t(p + "attn_norm.weight", s.n_embd)
        m.t(p + "post_attention_norm.weight", s.n_embd)
        m.attention(i)
        m.t(p + "attn_q.bias", s.n_head * s.head_dim)
        m.t(p + "attn_k.bias", s.n_head_kv * s.head_dim)
        m.t(p + "attn_v.bias", s.n_head_kv * s.head_dim)
        m.t(p + "attn_output.bias", s.n_embd)
        m.t(p + "attn_sinks.weight", s.n_head)
        m.moe_ffn(i, n_expert, n_ff_exp, bias=True)
    return m


def _deepseek2(s: Shape) -> _Model:
    """MLA as current converters write it (key_length = kv_lora + rope, the _mla keys, split k_b/v_b)."""
    m = _Model("deepseek2", s)
    e = s.extra
    kv_lora, rope, nope, v_mla = e.get("kv_lora_rank", 256), e.get("rope", 32), e.get("nope", 64), e.get("v_head", 64)
    q_lora = e.get("q_lora_rank", 0)
    n_expert, used, n_ff_exp, shared = e.get("n_expert", 8), e.get("n_expert_used", 2), e.get("n_ff_exp", 256), 1
    lead = e.get("leading_dense", 1)
    m.common(rope=rope)
    m.key("attention.head_count", s.n_head)
    m.key("attention.head_count_kv", 1)
    m.key("attention.key_length", kv_lora + rope)
    m.key("attention.value_length", kv_lora)
    m.key("attention.key_length_mla", nope + rope)
    m.key("attention.value_length_mla", v_mla)
    m.key("attention.kv_lora_rank", kv_lora)
    if q_lora:
        m.key("attention.q_lora_rank", q_lora)
    m.key("feed_forward_length", s.n_ff)
    m.key("leading_dense_block_count", lead)
    m.key("expert_count", n_expert)
    m.key("expert_used_count", used)
    m.key("expert_feed_forward_length", n_ff_exp)
    m.key("expert_shared_count", shared)
    m.key("expert_weights_scale", 1.0)
    for i in range(s.n_layer):
        p = f"blk.{i}."
        m.t(p + "attn_norm.weight", s.n_embd)
        m.t(p + "attn_kv_a_norm.weight", kv_lora)
        if q_lora:
            m.t(p + "attn_q_a_norm.weight", q_lora)
            m.t(p + "attn_q_a.weight", s.n_embd, q_lora)
            m.t(p + "attn_q_b.weight", q_lora, s.n_head * (nope + rope))
        else:
            m.t(p + "attn_q.weight", s.n_embd, s.n_head * (nope + rope))
        m.t(p + "attn_kv_a_mqa.weight", s.n_embd, kv_lora + rope)
        m.t(p + "attn_k_b.weight", nope, kv_lora, s.n_head, type_="F16")
        m.t(p + "attn_v_b.weight", kv_lora, v_mla, s.n_head, type_="F16")
        m.t(p + "attn_output.weight", s.n_head * v_mla, s.n_embd)
        m.t(p + "ffn_norm.weight", s.n_embd)
        if i < lead:
            m.dense_ffn(i)
        else:
            m.moe_ffn(i, n_expert, n_ff_exp)
            m.t(p + "ffn_gate_shexp.weight", s.n_embd, n_ff_exp * shared)
            m.t(p + "ffn_up_shexp.weight", s.n_embd, n_ff_exp * shared)
            m.t(p + "ffn_down_shexp.weight", n_ff_exp * shared, s.n_embd)
    return m


def _mamba(s: Shape) -> _Model:
    m = _Model("mamba", s)
    d_inner, d_state, d_conv, dt_rank = 2 * s.n_embd, s.extra.get("d_state", 16), 4, s.extra.get("dt_rank", 32)
    m.common()
    m.key("feed_forward_length", 0)
    m.key("attention.head_count", 0)
    m.ssm_keys(d_conv, d_inner, d_state, dt_rank, None)
    if s.extra.get("dt_b_c_rms"):  # convert_hf_to_gguf FalconMambaModel: RMS norms on dt, B and C
        m.key("ssm.dt_b_c_rms", True)
    for i in range(s.n_layer):
        p = f"blk.{i}."
        m.t(p + "attn_norm.weight", s.n_embd)
        m.t(p + "ssm_in.weight", s.n_embd, 2 * d_inner)
        m.t(p + "ssm_conv1d.weight", d_conv, d_inner, type_="F32")
        m.t(p + "ssm_conv1d.bias", d_inner)
        m.t(p + "ssm_x.weight", d_inner, dt_rank + 2 * d_state, type_="F16")
        m.t(p + "ssm_dt.weight", dt_rank, d_inner, type_="F16")
        m.t(p + "ssm_dt.bias", d_inner)
        m.t(p + "ssm_a", d_state, d_inner, type_="F32")
        m.t(p + "ssm_d", d_inner)
        m.t(p + "ssm_out.weight", d_inner, s.n_embd)
    return m


def _mamba2(s: Shape) -> _Model:
    m = _Model("mamba2", s)
    d_inner, d_state, n_group = 2 * s.n_embd, s.extra.get("d_state", 64), s.extra.get("n_group", 2)
    n_ssm_head = d_inner // s.extra.get("ssm_head_dim", 64)
    m.common()
    m.key("feed_forward_length", 0)
    m.key("attention.head_count", 0)
    m.ssm_keys(4, d_inner, d_state, n_ssm_head, n_group)
    for i in range(s.n_layer):
        m.t(f"blk.{i}.attn_norm.weight", s.n_embd)
        m.mamba2_mixer(i, d_inner, d_state, n_group, n_ssm_head)
    return m


def _granitehybrid(s: Shape) -> _Model:
    """Mamba2 layers where head_count_kv is 0, attention layers elsewhere, dense FFN on every layer."""
    m = _Model("granitehybrid", s)
    d_inner, d_state, n_group = 2 * s.n_embd, s.extra.get("d_state", 64), s.extra.get("n_group", 1)
    n_ssm_head = d_inner // s.extra.get("ssm_head_dim", 64)
    attn_every = s.extra.get("attn_every", 3)
    kv = [s.n_head_kv if (i + 1) % attn_every == 0 else 0 for i in range(s.n_layer)]
    m.common()
    m.heads(kv)
    m.key("feed_forward_length", s.n_ff)
    m.ssm_keys(4, d_inner, d_state, n_ssm_head, n_group)
    for i in range(s.n_layer):
        m.t(f"blk.{i}.attn_norm.weight", s.n_embd)
        if kv[i]:
            m.attention(i)
        else:
            m.mamba2_mixer(i, d_inner, d_state, n_group, n_ssm_head)
        m.t(f"blk.{i}.ffn_norm.weight", s.n_embd)
        m.dense_ffn(i)
    return m


def _falcon_h1(s: Shape) -> _Model:
    """Every layer runs attention and a Mamba2 mixer in parallel: KV and recurrent state on each."""
    m = _Model("falcon-h1", s)
    d_inner, d_state, n_group = s.extra.get("d_inner", 1024), s.extra.get("d_state", 64), s.extra.get("n_group", 1)
    n_ssm_head = d_inner // s.extra.get("ssm_head_dim", 64)
    m.common(rope=s.head_dim)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.ssm_keys(4, d_inner, d_state, n_ssm_head, n_group)
    for i in range(s.n_layer):
        m.mamba2_mixer(i, d_inner, d_state, n_group, n_ssm_head)
        m.attention(i)
        m.t(f"blk.{i}.attn_norm.weight", s.n_embd)
        m.t(f"blk.{i}.ffn_norm", s.n_embd)  # falcon-h1.cpp: tn(LLM_TENSOR_FFN_NORM, i), no ".weight"
        m.dense_ffn(i)
    return m


def _qwen3next(s: Shape) -> _Model:
    """Gated DeltaNet layers (3 of every 4) and gated full attention, MoE FFN with a shared expert."""
    m = _Model("qwen3next", s)
    e = s.extra
    n_k_heads, n_v_heads, head_dim_lin = e.get("lin_k_heads", 4), e.get("lin_v_heads", 8), e.get("lin_head_dim", 64)
    n_expert, used, n_ff_exp, n_ff_sh = e.get("n_expert", 8), e.get("n_expert_used", 2), e.get("n_ff_exp", 256), 256
    key_dim, value_dim = head_dim_lin * n_k_heads, head_dim_lin * n_v_heads
    m.common(rope=s.head_dim // 4)
    m.heads()
    m.key("feed_forward_length", s.n_ff)
    m.shared_expert_keys(n_expert, used, n_ff_exp, n_ff_sh)
    m.key("full_attention_interval", 4)
    m.ssm_keys(4, value_dim, head_dim_lin, n_v_heads, n_k_heads)
    for i in range(s.n_layer):
        p = f"blk.{i}."
        m.t(p + "attn_norm.weight", s.n_embd)
        m.t(p + "post_attention_norm.weight", s.n_embd)
        if (i + 1) % 4 == 0:
            m.attention(i, qk_norm=True, q_width=2 * s.n_head * s.head_dim)
        else:
            m.t(p + "ssm_in.weight", s.n_embd, 2 * key_dim + 2 * value_dim)
            m.t(p + "ssm_conv1d.weight", 4, 2 * key_dim + value_dim, type_="F32")
            m.t(p + "ssm_dt.bias", n_v_heads)
            m.t(p + "ssm_a", n_v_heads)
            m.t(p + "ssm_ba.weight", s.n_embd, 2 * n_v_heads, type_="F16")
            m.t(p + "ssm_norm.weight", head_dim_lin)
            m.t(p + "ssm_out.weight", value_dim, s.n_embd)
        m.moe_ffn(i, n_expert, n_ff_exp)
        m.t(p + "ffn_gate_inp_shexp.weight", s.n_embd)
        m.t(p + "ffn_gate_shexp.weight", s.n_embd, n_ff_sh)
        m.t(p + "ffn_up_shexp.weight", s.n_embd, n_ff_sh)
        m.t(p + "ffn_down_shexp.weight", n_ff_sh, s.n_embd)
    return m


FAMILIES = {
    "llama": _llama, "qwen3": _qwen3, "qwen3moe": _qwen3moe,
    "gemma2": lambda s: _gemma("gemma2", s), "gemma3": lambda s: _gemma("gemma3", s),
    "gpt-oss": _gpt_oss, "deepseek2": _deepseek2, "mamba": _mamba, "mamba2": _mamba2,
    "granitehybrid": _granitehybrid, "falcon-h1": _falcon_h1, "qwen3next": _qwen3next,
}

# The models recorded: family, a name, and the shape (several shapes for the plain families).
MODELS: dict[str, tuple[str, Shape]] = {
    "llama-a": ("llama", Shape()),
    "llama-tied-q4k": ("llama", Shape(n_embd=768, n_head=12, n_head_kv=4, n_ff=2048, n_layer=8, n_vocab=32000,
                                      tied=True, weight_type="Q4_K")),
    "llama-mha-f16": ("llama", Shape(n_embd=256, n_head=4, n_head_kv=4, n_ff=768, n_layer=4, n_vocab=4096,
                                     weight_type="F16")),
    "qwen3": ("qwen3", Shape(n_head=16, head_dim=128, n_head_kv=4)),
    "qwen3moe": ("qwen3moe", Shape(n_layer=4)),
    "gemma2": ("gemma2", Shape(n_head_kv=4, head_dim=128, n_vocab=16384, tied=True, extra={"window": 1024})),
    "gemma3": ("gemma3", Shape(n_layer=12, n_head=4, n_head_kv=1, head_dim=128, n_vocab=16384,
                               extra={"window": 512})),
    "gpt-oss": ("gpt-oss", Shape(n_head=16, head_dim=64, n_layer=4, extra={"window": 128})),
    "deepseek2": ("deepseek2", Shape(n_head=8, n_layer=4, extra={"q_lora_rank": 128})),  # not "lite": q_lora required
    "deepseek2-qlora": ("deepseek2", Shape(n_head=16, n_layer=3, extra={"q_lora_rank": 256, "kv_lora_rank": 512,
                                                                       "rope": 64, "nope": 128, "v_head": 128})),
    "mamba": ("mamba", Shape(n_layer=4, tied=True)),
    "falcon-mamba": ("mamba", Shape(n_layer=4, extra={"dt_b_c_rms": True, "d_state": 16, "dt_rank": 32})),
    "mamba2": ("mamba2", Shape(n_layer=4)),
    "granitehybrid": ("granitehybrid", Shape(n_layer=6)),
    "falcon-h1": ("falcon-h1", Shape(n_layer=4)),
    "qwen3next": ("qwen3next", Shape(n_layer=8, n_head=8, head_dim=128, n_head_kv=2)),
}


def build(name: str) -> _Model:
    family, shape = MODELS[name]
    return FAMILIES[family](shape)


MIB = 2**20
DATA = Path(__file__).parent / "data"


def mib(b: int) -> float:
    """Bytes as llama.cpp prints a buffer's size: MiB with two decimals."""
    return round(b / MIB, 2)


def recorded(name: str) -> dict[str, Any]:
    """tests/data/<name>.json as a tools/record_llamacpp*.py recorder wrote it."""
    return json.loads((DATA / f"{name}.json").read_text())


def write_gguf(name: str, path: Path) -> Path:
    """Write model `name` to path (zeros as tensor data) with gguf.GGUFWriter."""
    return write_model(build(name), name, path)


def write_model(m: Any, name: str, path: Path) -> Path:
    """Write a built model's metadata and tensors (zeros) to path."""
    w = gguf.GGUFWriter(str(path), m.arch)
    w.add_name(name)
    w.add_tokenizer_model("no_vocab")
    write_kv(w, m.kv)
    write_tensors(w, m.tensors)
    return path


def write_kv(w: gguf.GGUFWriter, kv: dict[str, Any]) -> None:
    """Write metadata keys by their Python type: bool, uint32, float32, array or string."""
    for k, v in kv.items():
        if isinstance(v, bool):
            w.add_bool(k, v)
        elif isinstance(v, int):
            w.add_uint32(k, v)
        elif isinstance(v, float):
            w.add_float32(k, v)
        elif isinstance(v, list):
            w.add_array(k, v)
        else:
            w.add_string(k, v)


def write_tensors(w: gguf.GGUFWriter, tensors: list[tuple[str, tuple[int, ...], str]]) -> None:
    """Add zero tensors of the given ggml types and write the file."""
    for tname, ne, type_ in tensors:
        qt = Q[type_]
        block, type_size = gguf.GGML_QUANT_SIZES[qt]
        row = ne[0] // block * type_size
        byte_shape = (*reversed(ne[1:]), row)
        w.add_tensor(tname, np.zeros(byte_shape, dtype=np.uint8), raw_shape=byte_shape, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
