"""Predict a GGUF file's tensor types and size for a llama.cpp file type, without the file.

1. The tensors convert_hf_to_gguf.py writes for a ModelSpec: GGUF names and ggml dims
   (ne[0] is the row, i.e. a Linear's input width); 1-D tensors, biases, routers and SSM
   conv/A/D stay F32.
2. The type llama-quantize gives each: llama.cpp src/llama-quant.cpp, llama_tensor_get_type and
   llama_tensor_get_type_impl (commit 007dbbf3), re-expressed here. Tensors are visited in the
   loader's weights_map order (llama-model-loader.h weight_name_comparer: by layer, then name),
   which drives the attn_v / ffn_down counters that pick the layers given more bits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from .errors import InputError, NotModelledError
from .ggml import ftypes, ggml_type, tensor_bytes
from .memo import Memo, layers_weight
from .params import inventory
from .spec import ModelSpec

# Families whose GGUF tensor layout is reproduced exactly (checked against real llama.cpp logs);
# others get the same rules on a generic layout and are marked approximate.
EXACT_LAYOUTS = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "gemma2", "gemma3_text",
                 "gpt_oss", "deepseek_v2", "deepseek_v3", "phi3"}
F32_ALWAYS = re.compile(r"ffn_gate_inp|ssm_conv1d|ssm_a$|ssm_d$|exp_probs_b|\.bias$|attn_sinks|router_")


@dataclass(frozen=True)
class GGUFTensor:
    name: str
    ne: tuple[int, ...]
    type: str = "F16"  # the type in the converted (unquantized) file


class GGUFPrediction(BaseModel):
    model_config = ConfigDict(frozen=True)

    ftype: str
    total_bytes: int
    tensors: int
    type_counts: dict[str, int]  # tensors per ggml type, as llama.cpp prints "type q4_K: N tensors"
    bytes_by_type: dict[str, int]
    approximate: bool  # the GGUF layout of this family is not checked against real files


def _rev(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(shape))


def gguf_tensors(spec: ModelSpec) -> list[GGUFTensor]:
    """The tensors of an unquantized GGUF of this model, named as llama.cpp names them."""
    out: list[GGUFTensor] = []
    fuse_qkv = spec.model_type == "phi3"  # Phi-3 GGUFs keep attn_qkv and a fused ffn_up
    pending: dict[str, list] = {}
    for t in inventory(spec):
        if t.group == "vision":
            continue  # the tower goes to a separate mmproj file
        name, shape = t.name, t.shape
        m = re.match(r"model\.layers\.(\d+)\.(.+)$", name)
        if name == "model.embed_tokens.weight":
            out.append(GGUFTensor("token_embd.weight", _rev(shape)))
            continue
        if name == "lm_head.weight":
            out.append(GGUFTensor("output.weight", _rev(shape)))
            continue
        if m is None:
            if name.startswith("model.norm_"):
                out.append(GGUFTensor("output_norm.weight" if name == "model.norm_0.weight" else name, shape, "F32"))
            else:
                out.append(GGUFTensor(name, _rev(shape)))
            continue
        i, rest = int(m.group(1)), m.group(2)
        blk = f"blk.{i}."
        if (nm := re.match(r"norm_(\d+)\.(weight|bias)$", rest)) and i < len(spec.layers):
            names = _LAYER_NORMS.get(spec.layers[i].norms)
            if names is not None:  # the GGUF name: -ot regexes (ffn.*=CPU) and the loader place norms by it
                out.append(GGUFTensor(f"{blk}{names[int(nm.group(1))]}.{nm.group(2)}", shape))
                continue
        for g_name, g_shape in _map_layer(rest, shape, spec):
            if fuse_qkv and re.match(r"attn_[qkv]\.weight$", g_name):
                pending.setdefault(f"{blk}attn_qkv.weight", []).append(g_shape)
                continue
            if fuse_qkv and g_name in ("ffn_gate.weight", "ffn_up.weight"):
                pending.setdefault(f"{blk}ffn_up.weight", []).append(g_shape)
                continue
            out.append(GGUFTensor(blk + g_name, g_shape))
    for name, shapes in pending.items():  # fused: rows stacked
        out.append(GGUFTensor(name, (shapes[0][0], sum(s[1] for s in shapes))))
    first = spec.layers[0].attention if spec.layers else None
    if first is not None and (spec.rope_scaling or {}).get("rope_type") == "llama3":
        out.append(GGUFTensor("rope_freqs.weight", (first.head_dim_k // 2,), "F32"))
    return [GGUFTensor(g.name, g.ne, "F32") if len(g.ne) == 1 or F32_ALWAYS.search(g.name) else g for g in out]


# a layer's norm vectors by their count, as convert_hf_to_gguf names them (gguf-py/gguf/tensor_mapping.py:
# input_layernorm -> attn_norm, post_attention_layernorm -> ffn_norm; Gemma 2/3's four: attn_norm,
# post_attention_norm, ffn_norm (pre_feedforward_layernorm), post_ffw_norm). Other counts keep norm_N.
_LAYER_NORMS = {1: ("attn_norm",), 2: ("attn_norm", "ffn_norm"),
                4: ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm")}
_ATTN = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "q_norm": "attn_q_norm", "k_norm": "attn_k_norm", "q_a_proj": "attn_q_a", "q_a_layernorm": "attn_q_a_norm",
         "q_b_proj": "attn_q_b", "kv_a_proj_with_mqa": "attn_kv_a_mqa", "kv_a_layernorm": "attn_kv_a_norm",
         "kv_b_proj": "attn_kv_b"}
_MLP = {"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
_SSM = {"in_proj": "ssm_in", "in_proj_qkvz": "ssm_in", "in_proj_ba": "ssm_ba", "conv1d": "ssm_conv1d",
        "x_proj": "ssm_x", "dt_proj": "ssm_dt", "out_proj": "ssm_out", "norm": "ssm_norm"}


def _map_layer(rest: str, shape: tuple[int, ...], spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """One inventory tensor of a layer -> its GGUF tensors (name without blk.N., ggml dims)."""
    parts = rest.split(".")
    kind = parts[-1]  # weight / bias / A_log ...
    if parts[0] == "self_attn":
        if parts[1] == "sinks":
            return [("attn_sinks.weight", shape)]
        if parts[1] == "indexer":
            return [("indexer." + ".".join(parts[2:]), _rev(shape))]
        if parts[1].startswith("index_"):  # MiniMax-M3's lightning indexer (index_q_proj, index_k_norm, ...)
            return [(f"indexer.{parts[1][len('index_'):]}.{kind}", _rev(shape))]
        return [(f"{_ATTN[parts[1]]}.{kind}", _rev(shape))]
    if parts[0] == "mlp":
        if parts[1] in _MLP:
            return [(f"{_MLP[parts[1]]}.{kind}", _rev(shape))]
        if parts[1] == "router":
            if kind == "e_score_correction_bias":  # noaux_tc routing bias
                return [("exp_probs_b.bias", shape)]
            if len(parts) == 3 and kind in ("scale", "per_expert_scale"):
                return [(f"router_{kind}.weight", shape)]
            return [(f"ffn_gate_inp.{kind}", _rev(shape))]
        if parts[1] == "experts":
            if parts[2] == "gate_up_proj":
                e, two_i, h = shape
                return [("ffn_gate_exps.weight", (h, two_i // 2, e)), ("ffn_up_exps.weight", (h, two_i // 2, e))]
            if parts[2] == "down_proj":
                e, h, i = shape
                return [("ffn_down_exps.weight", (i, h, e))]
            if parts[2] == "gate_up_proj_bias":
                e, two_i = shape
                return [("ffn_gate_exps.bias", (two_i // 2, e)), ("ffn_up_exps.bias", (two_i // 2, e))]
            if parts[2] == "down_proj_bias":
                return [("ffn_down_exps.bias", _rev(shape))]
        if parts[1] == "shared_expert":
            return [(f"{_MLP[parts[2]]}_shexp.{kind}", _rev(shape))]
        if parts[1] == "shared_expert_gate":
            return [("ffn_gate_inp_shexp.weight", _rev(shape))]
    if parts[0] == "mamba":
        if parts[1] in ("A_log", "D", "dt_bias"):
            return [({"A_log": "ssm_a", "D": "ssm_d", "dt_bias": "ssm_dt.bias"}[parts[1]], shape)]
        if parts[1].endswith("layernorm"):
            return [(f"ssm_{parts[1]}.weight", shape)]
        if parts[1] == "conv1d" and kind == "weight":
            return [("ssm_conv1d.weight", (shape[2], shape[0]))]
        return [(f"{_SSM[parts[1]]}.{kind}", _rev(shape))]
    return [(rest, _rev(shape))]  # layer norms


# ---------------------------------------------------------------- llama_tensor_get_type


def _category(name: str) -> str:
    """tensor_get_category (llama-quant.cpp)."""
    if name == "output.weight":
        return "OUTPUT"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "TOKEN_EMBD"
    for key, cat in (("attn_qkv.weight", "QKV"), ("attn_kv_b.weight", "KV_B"), ("attn_v.weight", "V"),
                     ("attn_k.weight", "K"), ("attn_q.weight", "Q"), ("attn_output.weight", "OUT"),
                     ("ffn_up", "UP"), ("ffn_gate", "GATE"), ("ffn_down", "DOWN")):
        if key in name:
            return cat
    return "OTHER"


def _allows_quantization(t: GGUFTensor) -> bool:
    """tensor_allows_quantization: 2-D/3-D tensors named *weight, not norms, routers or conv1d."""
    n = t.name
    if len(t.ne) < 2 or not n.endswith("weight") or "_norm.weight" in n:
        return False
    return not any(s in n for s in ("ffn_gate_inp.weight", "ssm_conv1d", "altup", "laurel", "per_layer_model_proj",
                                    "attn_rel_b.weight", "indexer.k_proj.weight", "indexer.q_proj.weight"))


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@dataclass
class _State:
    n_attention_wv: int
    n_layer: int
    n_expert: int
    n_gqa: float
    is_70b: bool
    tied: bool
    has_imatrix: bool
    i_attention_wv: int = 0
    counters: dict = field(default_factory=lambda: {"DOWN": 0, "GATE": 0, "UP": 0})


IQ_LOW = {"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"}


def _choose(qs: _State, t: GGUFTensor, cat: str, ftype: str, new: str) -> str:
    """llama_tensor_get_type_impl: the per-category, per-ftype adjustments."""
    def layer_of(counter: str) -> int:
        m = re.match(r"blk\.(\d+)\.", t.name)
        if qs.n_expert > 1 and m:
            return int(m.group(1))
        return qs.counters[counter]

    n_layer = qs.n_layer
    if cat == "OUTPUT" or (qs.tied and cat == "TOKEN_EMBD"):
        if ftype == "MXFP4_MOE":
            return "Q8_0"
        if t.ne[0] % ggml_type(new).block:
            return "Q8_0"
        if ftype in IQ_LOW | {"IQ3_XXS"}:
            return "Q5_K"
        return new if new == "Q8_0" else "Q6_K"
    if ftype == "MXFP4_MOE":
        return "MXFP4" if len(t.ne) > 2 and t.ne[2] > 1 else "Q8_0"
    if cat == "TOKEN_EMBD":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
        if ftype in ("TQ1_0", "TQ2_0", "Q2_0"):
            return "Q4_K"
        return new
    attn_v = cat in ("V", "QKV", "KV_B")
    if ftype in IQ_LOW:
        if attn_v:
            if qs.n_gqa >= 4 or qs.n_expert >= 4:
                new = "Q4_K"
            else:
                new = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            qs.i_attention_wv += 1
        elif qs.n_expert == 8 and cat == "K":
            new = "Q4_K"
        elif cat == "DOWN":
            if qs.counters["DOWN"] < n_layer // 8:
                new = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            qs.counters["DOWN"] += 1
        elif cat == "OUT":
            if qs.n_expert == 8:
                new = "Q5_K"
            elif ftype in ("IQ1_S", "IQ1_M"):
                new = "IQ2_XXS"
            elif ftype in ("IQ2_S", "IQ2_M"):
                new = "IQ3_S"
        return new
    if attn_v:
        i, n = qs.i_attention_wv, qs.n_attention_wv
        if ftype == "Q2_K":
            new = "Q4_K" if qs.n_gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and qs.n_gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_XXS":
            new = "Q4_K" if qs.n_gqa >= 4 else ("IQ3_S" if not qs.has_imatrix else "IQ3_XXS")
        elif ftype in ("IQ3_XS", "IQ3_S") and qs.n_gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_M":
            new = "Q4_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and qs.n_gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if qs.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if qs.n_expert == 8:
            new = "Q8_0"
        qs.i_attention_wv += 1
        return new
    if cat == "K":
        if qs.n_expert == 8:
            return "Q8_0"
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "Q":
        return {"IQ3_XS": "IQ3_XXS", "IQ3_XXS": "IQ2_S"}.get(ftype, new)
    if cat == "DOWN":
        i = layer_of("DOWN")
        if ftype == "Q2_K":
            new = "Q3_K"
        elif ftype == "Q2_K_S":
            if i < n_layer // 8:
                new = "Q4_K"
        elif ftype == "IQ3_XXS" and not qs.has_imatrix:
            new = "Q4_K" if i < n_layer // 8 else "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < n_layer // 16 else "Q4_K"  # (Falcon's exception is not modelled)
        elif ftype == "IQ3_M" and (i < n_layer // 8 or (qs.n_expert == 8 and _use_more_bits(i, n_layer))):
            new = "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype == "Q4_K_M":
            if _use_more_bits(i, n_layer):
                new = "Q6_K"
        elif i < n_layer // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not qs.has_imatrix:
            new = "Q5_K"
        elif ftype == "Q5_K_M" and _use_more_bits(i, n_layer):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < n_layer // 8:
            new = "Q5_K"
        elif ftype in ("Q4_0", "Q5_0") and qs.has_imatrix and i < n_layer // 8:
            new = "Q4_1" if ftype == "Q4_0" else "Q5_1"
        qs.counters["DOWN"] += 1
        return new
    if cat == "OUT":
        if qs.n_expert == 8:
            if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                         "IQ3_M", "IQ4_XS"):
                new = "Q5_K"
            return new
        return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(ftype, new)
    if cat in ("GATE", "UP"):
        i = layer_of(cat)
        if ftype == "IQ3_XS" and n_layer // 8 <= i < 7 * n_layer // 8:
            new = "IQ3_XXS"
        qs.counters[cat] += 1
        return new
    return new


_FALLBACK = {"IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
             "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
             "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _fallback(t: GGUFTensor, new: str) -> str:
    """tensor_type_fallback: a row length the block does not divide gets a smaller block."""
    if t.ne[0] % ggml_type(new).block == 0:
        return new
    if new not in _FALLBACK:
        raise NotModelledError(f"llama.cpp defines no fallback for {new} (tensor {t.name}, row {t.ne[0]})")
    new = _FALLBACK[new]
    return new if t.ne[0] % ggml_type(new).block == 0 else "F16"


def _sort_key(name: str) -> tuple[int, str]:
    m = re.match(r"blk\.(\d+)\.", name)
    return (int(m.group(1)) if m else -1, name)


# ModelSpec holds dicts: plans keyed by the spec's identity (holding the spec), then by the other arguments;
# a planner or search asks for the same spec and file type many times. Bounded by the layers held (memo.py).
_PLANS: Memo[tuple[ModelSpec, dict[tuple, tuple[tuple[GGUFTensor, str], ...]]]] = Memo()


def unread_llamacpp_graph(spec: ModelSpec) -> None:
    """LFM2's short-conv layers, Kimi-Linear's KDA layers and MiniCPM3's whole-head MLA are read from a config.json
    (vLLM's layout); llama.cpp's own graphs and caches for them (llama.cpp 4df29be src/models/lfm2.cpp, minicpm3.cpp;
    MiniCPM3's V cache is v_head_dim wide, not vLLM's padded one) are not transcribed, so neither a GGUF of them is
    predicted nor llama.cpp checked; a GGUF file of LFM2 or MiniCPM3 is refused too (sources/gguf_spec.py: its
    shortconv.* / MLA keys)."""
    if any(la.ssm is not None and la.ssm.kind in ("short_conv", "kda") or
           la.attention is not None and la.attention.mla is not None and not la.attention.latent_cache
           for la in spec.layers):
        raise NotModelledError(f"llama.cpp on {spec.model_type} ({spec.id}): its llama.cpp graph and cache (short "
                               "convolution, Kimi delta attention or MiniCPM3 attention) are not modelled; vramcalc "
                               "reads it for vLLM only")


def plan_gguf(spec: ModelSpec, ftype: str, *, imatrix: bool | None = None, token_embedding_type: str | None = None,
              output_tensor_type: str | None = None, unquantized: str = "BF16") -> list[tuple[GGUFTensor, str]]:
    """Each tensor of `llama-quantize` to `ftype` (Q4_K_M, Q8_0, IQ4_XS ...) with its ggml type,
    in the loader's order (a new list each call; its items are frozen).

    imatrix: whether an importance matrix is used (default: only where the ftype needs one).
    unquantized: the type of 2-D tensors that may not be quantized (the input GGUF's type).
    """
    unread_llamacpp_graph(spec)  # no GGUF is predicted for a model whose llama.cpp graph is not modelled
    key = (ftype.upper(), imatrix, token_embedding_type, output_tensor_type, unquantized)
    held = _PLANS.get(id(spec))
    if held is None or held[0] is not spec:
        held = (spec, {})
        _PLANS.put(id(spec), held, layers_weight(len(spec.layers)))
    if key not in held[1]:
        if len(held[1]) >= 64:
            held[1].clear()
        held[1][key] = tuple(_plan_gguf(spec, ftype, imatrix, token_embedding_type, output_tensor_type, unquantized))
    return list(held[1][key])


def _plan_gguf(spec: ModelSpec, ftype: str, imatrix: bool | None, token_embedding_type: str | None,
               output_tensor_type: str | None, unquantized: str) -> list[tuple[GGUFTensor, str]]:
    ftype = ftype.upper()
    if ftype not in ftypes():
        raise InputError(f"unknown llama.cpp file type {ftype!r}; known: {', '.join(ftypes())}")
    default = ftypes()[ftype].base_ggml_type
    tensors = sorted(gguf_tensors(spec), key=lambda t: _sort_key(t.name))
    attn = next((layer.attention for layer in spec.layers if layer.attention is not None), None)
    n_expert = max((layer.mlp.num_experts for layer in spec.layers), default=0)
    qs = _State(
        n_attention_wv=sum(_category(t.name) in ("V", "QKV", "KV_B") for t in tensors),
        n_layer=spec.num_layers,
        n_expert=max(1, n_expert),
        n_gqa=(attn.num_heads / attn.num_kv_heads) if attn is not None and attn.mla is None else 1,
        # llama-model.cpp load_hparams: 80-layer Llama with GQA and 80-layer Qwen2 are LLM_TYPE_70B
        is_70b=spec.model_type in ("llama", "qwen2") and spec.num_layers == 80,
        tied=not any(t.name == "output.weight" for t in tensors),
        has_imatrix=imatrix if imatrix is not None else ftype in IQ_LOW | {"IQ3_XXS", "Q2_K_S"},
    )
    plan: list[tuple[GGUFTensor, str]] = []
    float_ftype = default in ("F32", "F16", "BF16")
    for t in tensors:
        cat = _category(t.name)
        if t.type == "F32":
            new = "F32"
        elif not _allows_quantization(t):
            new = unquantized
        elif token_embedding_type and cat == "TOKEN_EMBD":
            new = token_embedding_type.upper()
        elif output_tensor_type and cat == "OUTPUT":
            new = output_tensor_type.upper()
        elif float_ftype:
            new = default
        else:
            new = _fallback(t, _choose(qs, t, cat, ftype, default))
        plan.append((t, new))
    return plan


def predict_gguf(spec: ModelSpec, ftype: str, **options: Any) -> GGUFPrediction:
    """Total bytes and tensor-type counts of `llama-quantize` to `ftype`; options as plan_gguf."""
    ftype = ftype.upper()
    counts: dict[str, int] = {}
    by_type: dict[str, int] = {}
    plan = plan_gguf(spec, ftype, **options)
    for t, new in plan:
        counts[new] = counts.get(new, 0) + 1
        by_type[new] = by_type.get(new, 0) + tensor_bytes(new, t.ne)
    tensors = plan
    return GGUFPrediction(ftype=ftype, total_bytes=sum(by_type.values()), tensors=len(tensors),
                          type_counts=counts, bytes_by_type=by_type,
                          approximate=spec.model_type not in EXACT_LAYOUTS or spec.approximate)
