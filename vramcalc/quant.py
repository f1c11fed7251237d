"""Checkpoint bytes per quantization format, tensor by tensor, from a ModelSpec.

A format is read from the config's quantization_config (or named for a conversion). Each Linear
weight matrix becomes the tensors that format stores (packed weights, scales, zero points, act-order
indices), with the layout of the format's reference writer named beside each rule; everything
else stays at the checkpoint dtype. What a format leaves unquantized follows its writers'
defaults plus the config's modules_to_not_convert / ignore / exclude_modules lists.
"""

from __future__ import annotations

import fnmatch
import json
import re
from math import ceil, prod
from typing import Any, Iterator, NoReturn

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import QuantTarget, QuantTargets, StandInFamily
from .errors import ConfigError, InputError, NotModelledError
from .kv import dtype_bytes
from .limits import MAX_IGNORE_PATTERNS, MAX_PATTERN_CHARS, MAX_PATTERN_REPEATS
from .memo import Memo, layers_weight
from .messages import Message, warning
from .params import GROUPS, group_of, inventory
from .spec import ModelSpec, TensorSpec


class QuantScheme(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str  # fp8_block | fp8_channel | fp8_tensor | int8_channel | gptq | awq | int_pack | nvfp4 |
    #              modelopt_nvfp4 | mxfp4 | mxfp8 | ct_mxfp4 | ct_mxfp8 | bnb_nf4 | bnb_fp4 | bnb_int8 | none
    bits: int = 16
    group_size: int = 0
    block: tuple[int, int] = (0, 0)
    zero_point: bool = False
    scale_dtype: str = "bfloat16"
    static_input_scale: bool = False  # a per-tensor input (activation) scale is stored too
    double_quant: bool = False  # bitsandbytes nested absmax quantization
    ignore: tuple[str, ...] = ()
    quantize_groups: tuple[str, ...] = ("attention", "dense_mlp", "routed_experts", "shared_experts", "ssm")
    one_scale_per_module: bool = False  # per-tensor scales of vLLM's fused modules (qkv_proj, gate_up_proj): one
    pad_to: int = 0  # the GEMM kernel pads K and N (and per-channel scales) to a multiple of this after loading
    fused_names: bool = False  # ignore patterns also match vLLM's fused module names (online quantization)
    only: tuple[str, ...] = ()  # where set, only the modules these patterns match are quantized (online targets)
    # vLLM's Humming schema (method "humming", vramcalc/vllm/humming.py): the weight scale's kind (group, block,
    # channel, tensor), the second scale (none, channel, tensor), a zero point in the model dtype, the N and K
    # multiples each module is padded to after loading, and the K multiple below which online quant leaves a layer
    scale_type: str = ""
    scale2: str = "none"
    fp_zero_point: bool = False
    pad_nk: tuple[int, int] = (0, 0)
    min_k: int = 0
    # Humming's `dynamic` "+:" patterns: (regex, the layer's schema as JSON), the first that matches a layer wins
    overrides: tuple[tuple[str, str], ...] = ()
    param_dtype: str = ""  # Humming: the model dtype (its scales' where they are not one byte)
    source: str = ""


# The weight bits each format's writers and kernels accept: a config outside them is corrupt, not a
# format (GPTQ: AutoGPTQ / GPTQModel packers and vLLM's GPTQConfig, 2/3/4/8; AWQ: AutoAWQ writes 4,
# vLLM's AWQ Marlin also reads 8; compressed-tensors: int 2-8 packed, float 4 (nvfp4) or 8 (fp8)).
QUANT_BITS: dict[str, tuple[int, ...]] = {"gptq": (2, 3, 4, 8), "awq": (4, 8), "int": (2, 3, 4, 5, 6, 7, 8),
                                          "float": (4, 8)}
# A quantization group / block: at most one row of the widest matrix (validate.MAX_WIDTH, 2^20 values).
MAX_GROUP = 2**20


def _qint(where: str, field: str, value: Any, lo: int = 1, hi: int = MAX_GROUP, allowed: tuple[int, ...] = ()) -> int:
    """An integer of a quantization_config in lo..hi (or in `allowed`), or ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"quantization_config.{field}", f"must be an integer, got {value!r:.40}")
    if allowed and value not in allowed:
        raise ConfigError(where, f"quantization_config.{field}", f"is {value}, not one of {', '.join(map(str, allowed))}")
    if not allowed and not lo <= value <= hi:
        raise ConfigError(where, f"quantization_config.{field}", f"is {value:,}, outside {lo:,}..{hi:,}")
    return value


def _group(where: str, field: str, value: Any) -> int:
    """A group size: positive, or -1 (GPTQ / AWQ: one group per output channel)."""
    return -1 if value == -1 and not isinstance(value, bool) else _qint(where, field, value)


def _block(where: str, field: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(where, f"quantization_config.{field}", f"must be two integers, got {value!r:.40}")
    return _qint(where, f"{field}[0]", value[0]), _qint(where, f"{field}[1]", value[1])


def _names_list(where: str, field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, f"quantization_config.{field}", f"must be a list of module names, got {value!r:.40}")
    return tuple(value)


def check_quant_config(qc: Any, where: str) -> None:
    """The numbers of a quantization_config, whatever its method: bits in their format's set, group
    sizes positive (or -1), block shapes positive. Raises ConfigError naming the file and field."""
    if qc is None:
        return
    if not isinstance(qc, dict):
        raise ConfigError(where, "quantization_config", f"must be a JSON object, got {qc!r:.40}")
    method = str(qc.get("quant_method", "")).lower()
    if method in ("gptq", "awq"):
        _qint(where, "bits", qc.get("bits", 4), allowed=QUANT_BITS[method])
        _group(where, "group_size", qc.get("group_size", 128))
    if method == "fp8" and qc.get("weight_block_size"):
        _block(where, "weight_block_size", qc["weight_block_size"])
    if method in ("modelopt", "modelopt_fp4", "nvfp4") and "group_size" in qc:
        _qint(where, "group_size", qc["group_size"])
    for field in ("modules_to_not_convert", "ignore", "exclude_modules", "llm_int8_skip_modules", "ignored_layers"):
        if qc.get(field):
            _names_list(where, field, qc[field])
    if method in ("compressed-tensors", "compressed_tensors"):
        groups = qc.get("config_groups") or {}
        if not isinstance(groups, dict) or not all(isinstance(g, dict) for g in groups.values()):
            raise ConfigError(where, "quantization_config.config_groups", "must map group names to objects")
        for name, g in groups.items():
            w = g.get("weights") or {}
            if not isinstance(w, dict):
                raise ConfigError(where, f"quantization_config.config_groups.{name}.weights", "must be an object")
            wtype = str(w.get("type", "int"))
            _qint(where, f"config_groups.{name}.weights.num_bits", w.get("num_bits", 8),
                  allowed=QUANT_BITS.get(wtype, QUANT_BITS["int"]))
            if w.get("group_size") is not None:  # compressed-tensors: positive, or null for per-channel
                _qint(where, f"config_groups.{name}.weights.group_size", w["group_size"])
            if w.get("block_structure"):
                _block(where, f"config_groups.{name}.weights.block_structure", w["block_structure"])


def scheme_from_config(qc: dict[str, Any] | None, spec: ModelSpec | None = None) -> QuantScheme:
    """The storage scheme a quantization_config describes (its numbers checked first)."""
    if not qc:
        return QuantScheme(method="none")
    check_quant_config(qc, spec.source if spec else "quantization_config")
    method = str(qc.get("quant_method", "")).lower()
    ignore = tuple(qc.get("modules_to_not_convert") or qc.get("ignore") or qc.get("exclude_modules")
                   or qc.get("ignored_layers") or ())  # ignored_layers: MiniMax's mxfp8 configs
    if method == "fp8":
        block = qc.get("weight_block_size")
        if block:
            # DeepSeek-V3 / Kimi-K2 store weight_scale_inv in fp32; so do Qwen's FP8 releases
            # (transformers FineGrainedFP8 writes float32 scales).
            return QuantScheme(method="fp8_block", bits=8, block=tuple(block), scale_dtype="float32", ignore=ignore,
                               source="transformers integrations/finegrained_fp8.py; DeepSeek-V3 checkpoint")
        return QuantScheme(method="fp8_tensor", bits=8, scale_dtype="float32", ignore=ignore,
                           static_input_scale=qc.get("activation_scheme") == "static")
    if method == "gptq":
        return QuantScheme(method="gptq", bits=int(qc.get("bits", 4)), group_size=int(qc.get("group_size", 128)),
                           zero_point=True, scale_dtype="float16", ignore=ignore,
                           source="AutoGPTQ/GPTQModel QuantLinear: qweight, qzeros, scales, g_idx")
    if method == "awq":
        return QuantScheme(method="awq", bits=int(qc.get("bits", 4)), group_size=int(qc.get("group_size", 128)),
                           zero_point=bool(qc.get("zero_point", True)), scale_dtype="float16", ignore=ignore,
                           source="AutoAWQ WQLinear_GEMM: qweight, qzeros, scales")
    if method == "mxfp4":
        # gpt-oss: experts only (modules_to_not_convert lists attention, router, embeddings, lm_head)
        return QuantScheme(method="mxfp4", bits=4, group_size=32, ignore=ignore, quantize_groups=("routed_experts",),
                           source="gpt-oss checkpoint: *_blocks (uint8, 16 per 32 values) and *_scales (e8m0)")
    if method == "bitsandbytes":
        if qc.get("load_in_4bit"):
            kind = "bnb_nf4" if qc.get("bnb_4bit_quant_type", "fp4") == "nf4" else "bnb_fp4"
            return QuantScheme(method=kind, bits=4, group_size=64, double_quant=bool(qc.get("bnb_4bit_use_double_quant")),
                               scale_dtype=spec.dtype if spec else "bfloat16",  # the dtype the quant state records
                               ignore=tuple(qc.get("llm_int8_skip_modules") or ()),
                               source="bitsandbytes Params4bit / QuantState.as_dict")
        return QuantScheme(method="bnb_int8", bits=8, ignore=tuple(qc.get("llm_int8_skip_modules") or ()),
                           source="bitsandbytes Int8Params: int8 weight + SCB")
    if method in ("compressed-tensors", "compressed_tensors"):
        groups = qc.get("config_groups") or {}
        g: dict[str, Any] = next(iter(groups.values()), {}) if groups else {}
        w = g.get("weights") or {}
        fmt = str(qc.get("format", "")).lower()
        bits, wtype = int(w.get("num_bits", 8)), str(w.get("type", "int"))
        strategy = str(w.get("strategy", "group" if w.get("group_size") else "channel"))
        src = "compressed-tensors compressors (" + (fmt or "?") + ")"
        static_in = bool(g.get("input_activations") and not (g.get("input_activations") or {}).get("dynamic", True))
        # MX formats: e8m0 (uint8) scales per 32 and no global scale; vLLM picks CompressedTensorsW4A4Mxfp4 (or
        # W4A8Mxfp4) / CompressedTensorsW8A8Mxfp8 for float weights in groups of 32 (vLLM v0.34.0
        # compressed_tensors.py _is_mxfp4 / _is_mxfp8, which also wants scale_dtype uint8), checked against
        # tests/data/vllm_ct_mx_oracle_v0.34.0.json
        if wtype == "float" and strategy == "group" and int(w.get("group_size") or 0) == 32 and \
                w.get("symmetric", True):
            if bits == 4:
                return QuantScheme(method="ct_mxfp4", bits=4, group_size=32, scale_dtype="uint8", ignore=ignore,
                                   source=src)
            if bits == 8 and "uint8" in str(w.get("scale_dtype", "")):
                return QuantScheme(method="ct_mxfp8", bits=8, group_size=32, scale_dtype="uint8", ignore=ignore,
                                   source=src)
        if wtype == "float" and bits == 4:
            return QuantScheme(method="nvfp4", bits=4, group_size=int(w.get("group_size") or 16), scale_dtype="fp8",
                               static_input_scale=bool(g.get("input_activations")), ignore=ignore, source=src)
        # the compressors store scales in the dtype the model was quantized in (checked against files
        # written by compressed-tensors 0.20, tools/make_quantized_checkpoints.py)
        scale_dtype = spec.dtype if spec else "bfloat16"
        if bits == 8 and fmt != "pack-quantized":
            kind = "fp8" if wtype == "float" else "int8"
            if strategy == "block":
                return QuantScheme(method="fp8_block", bits=8, block=tuple(w.get("block_structure") or (128, 128)),
                                   scale_dtype=scale_dtype, ignore=ignore, source=src)
            return QuantScheme(method=f"{kind}_{'tensor' if strategy == 'tensor' else 'channel'}", bits=8,
                               scale_dtype=scale_dtype, static_input_scale=static_in, ignore=ignore, source=src)
        return QuantScheme(method="int_pack", bits=bits, group_size=int(w.get("group_size") or 0),
                           zero_point=not w.get("symmetric", True), scale_dtype=spec.dtype if spec else "bfloat16",
                           ignore=ignore, source=src)
    if method == "mxfp8" or (method in ("modelopt", "modelopt_fp4", "nvfp4")
                             and "MXFP8" in str(qc.get("quant_algo", "")).upper()):
        # ModelOpt MXFP8 (and MiniMax's quant_method mxfp8, the same layout): an e4m3 weight and one e8m0 scale
        # per 32 inputs, no input scale (vllm v0.33.0 model_executor/layers/quantization/modelopt.py
        # KMxfp8Static.create_weights, ModelOptMxFp8Config.override_quantization_method)
        return QuantScheme(method="mxfp8", bits=8, group_size=32, ignore=ignore, source="NVIDIA ModelOpt MXFP8 export")
    if method in ("modelopt", "modelopt_fp4", "nvfp4"):
        algo = str(qc.get("quant_algo", "NVFP4")).upper()
        if "FP8" in algo:
            return QuantScheme(method="fp8_tensor", bits=8, scale_dtype="float32", static_input_scale=True,
                               ignore=ignore, source="NVIDIA ModelOpt FP8 export")
        return QuantScheme(method="modelopt_nvfp4", bits=4, group_size=int(qc.get("group_size", 16)), scale_dtype="fp8",
                           static_input_scale=True, ignore=ignore, source="NVIDIA ModelOpt NVFP4 export")
    raise NotModelledError(f"quantization method {method!r} is not modelled")


# ---------------------------------------------------------------- which matrices are quantized


# Linear weights that checkpoints keep unquantized whatever the config says: DeepSeek-V3.2's
# indexer weights_proj and the MTP eh_proj, and the MTP embedding / head copies (DeepSeek-V3.2's
# stored element count is matched only with them in bf16), like the main embedding and lm_head.
# self_conditioning: DiffusionGemma's self-conditioning MLP is plain nn.Linear in vLLM, never given a quant method
# (v0.34.0 vllm/model_executor/models/diffusion_gemma.py DiffusionGemmaSelfConditioning)
ALWAYS_UNQUANTIZED = re.compile(r"indexer\.weights_proj|eh_proj|\.embed_tokens\.|shared_head\.head|\.self_conditioning\.")


def _matrices(t: TensorSpec) -> list[tuple[int, int, int]]:
    """(count, out, in) of the Linear weight matrices a tensor holds; [] for non-Linear tensors."""
    if t.buffer or len(t.shape) < 2 or not t.name.endswith(("weight", "gate_up_proj", "up_proj", "down_proj")):
        return []
    if ALWAYS_UNQUANTIZED.search(t.name):
        return []
    if t.name.endswith("experts.gate_up_proj"):  # (E, 2I, H): gate and up, E of each
        e, two_i, h = t.shape
        return [(2 * e, two_i // 2, h)]
    if t.name.endswith("experts.up_proj"):  # (E, I, H): NemotronHExperts' plain (relu2) experts have no gate
        e, i, h = t.shape
        return [(e, i, h)]
    if t.name.endswith("experts.down_proj"):
        e, h, i = t.shape
        return [(e, h, i)]
    if len(t.shape) == 2:
        return [(1, t.shape[0], t.shape[1])]
    return []  # conv1d and other n-d weights


_ALIASES = [  # our inventory name -> names real checkpoints use for the same module
    (r"\.mlp\.router$", [".mlp.gate", ".mlp.router", ".block_sparse_moe.gate", ".router.proj", ".feed_forward.router"]),
    (r"\.mlp\.shared_expert\.", [".mlp.shared_expert.", ".mlp.shared_experts.", ".feed_forward.shared_expert."]),
    (r"\.mlp\.experts\.gate_up_proj$", [".mlp.experts.0.gate_proj", ".mlp.experts.0.up_proj",
                                        ".mlp.experts.gate_up_proj", ".block_sparse_moe.experts.0.w1"]),
    (r"\.mlp\.experts\.up_proj$", [".mlp.experts.0.up_proj", ".mlp.experts.up_proj", ".mixer.experts.0.up_proj"]),
    (r"\.mlp\.experts\.down_proj$", [".mlp.experts.0.down_proj", ".mlp.experts.down_proj",
                                     ".block_sparse_moe.experts.0.w2"]),
    # Qwen3-Next's fused in_proj_qkvz / in_proj_ba are four modules in Qwen3.5 / 3.6 checkpoints (in_proj_qkv,
    # in_proj_z, in_proj_b, in_proj_a: transformers models/qwen3_5/modeling_qwen3_5.py Qwen3_5GatedDeltaNet)
    (r"\.mamba\.in_proj_qkvz$", [".mamba.in_proj_qkvz", ".mixer.in_proj_qkvz", ".linear_attn.in_proj_qkvz",
                                  ".linear_attn.in_proj_qkv", ".linear_attn.in_proj_z"]),
    (r"\.mamba\.in_proj_ba$", [".mamba.in_proj_ba", ".mixer.in_proj_ba", ".linear_attn.in_proj_ba",
                                ".linear_attn.in_proj_b", ".linear_attn.in_proj_a"]),
    (r"\.mamba\.", [".mamba.", ".mixer.", ".linear_attn."]),
]


# vLLM's fused modules (packed_modules_mapping) and the routed experts' layer, whose names an online ignore pattern
# may give (vLLM 0.34.0 quantization/utils/config_utils.py find_matching_patterns: the fused name first, then each
# shard's; the experts are one RoutedExperts layer named `...mlp.experts`)
_FUSED = [(r"\.self_attn\.[qkv]_proj$", ".self_attn.qkv_proj"), (r"\.mlp\.(gate|up)_proj$", ".mlp.gate_up_proj"),
          (r"\.mlp\.experts\.(gate_up|up|down)_proj$", ".mlp.experts")]


def module_names(t: TensorSpec, composite: bool, fused: bool = False) -> list[str]:
    """Checkpoint module names this tensor may go by (for matching ignore lists); fused: vLLM's fused module name
    too (an online quantization's ignore list names vLLM's layers)."""
    base = re.sub(r"\.(weight|bias)$", "", t.name)
    names = [base]
    for pattern, subs in _ALIASES:
        m = re.search(pattern, base)
        if m:
            names = [base[: m.start()] + s + base[m.end():] for s in subs]
            break
    if fused:
        names += [base[: m.start()] + sub for p, sub in _FUSED if (m := re.search(p, base))]
    if composite:
        names += [n.replace("model.", "model.language_model.", 1) for n in names]
    return names


_IGNORE_REGEX: Memo[re.Pattern[str]] = Memo(budget=MAX_PATTERN_CHARS * 1000)  # by the characters of the patterns


def _ignore_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """compressed-tensors: "re:" regex on the module name (re.match), else the name or a glob
    (ModelOpt exclude_modules); transformers modules_to_not_convert: a substring of the module name.
    All patterns in one regex, used with re.match. A "re:" pattern is read from a file: it is checked first
    (safe_pattern), so none can make matching take exponential time."""
    hit = _IGNORE_REGEX.get(patterns)
    if hit is not None:
        return hit
    if len(patterns) > MAX_IGNORE_PATTERNS:
        raise InputError(f"quantization_config: an ignore list of {len(patterns):,} entries is longer than "
                         f"vramcalc reads (at most {MAX_IGNORE_PATTERNS:,})")
    parts = []
    for p in patterns:
        if p.startswith("re:"):
            parts.append(safe_pattern(p[3:]))
        elif any(c in p for c in "*?["):
            parts.append(fnmatch.translate(p))
        else:
            parts.append(".*" + re.escape(p))
    rx = re.compile("|".join(f"(?:{x})" for x in parts) or r"(?!)")
    _IGNORE_REGEX.put(patterns, rx, sum(len(p) for p in patterns) + 1)
    return rx


def _refuse(pattern: str, why: str) -> NoReturn:
    raise InputError(f"quantization_config ignore-list pattern 're:{pattern}': {why}; vramcalc matches patterns "
                     f"of at most {MAX_PATTERN_CHARS:,} characters, without backreferences, without a repeated group "
                     f"that itself repeats or alternates, and with at most {MAX_PATTERN_REPEATS} unbounded repeats")


def safe_pattern(pattern: str) -> str:
    """A regex read from a config's ignore list, returned when its matching time is bounded (polynomial of low
    degree in the module name's length), else refused with an InputError naming the limit: over
    MAX_PATTERN_CHARS characters, a backreference, a repeated group whose body repeats or alternates
    (`(a+)+`, `(a|a)*`: exponential backtracking) or more than MAX_PATTERN_REPEATS unbounded repeats."""
    if len(pattern) > MAX_PATTERN_CHARS:
        _refuse(pattern[:60], f"{len(pattern):,} characters")
    frames: list[list[bool]] = [[False, False]]  # per open group: [holds a variable repeat, an alternation]
    repeats = 0
    i, n = 0, len(pattern)
    closed: list[bool] | None = None  # the group that ended just before i, if any
    while i < n:
        c = pattern[i]
        atom_group = closed
        closed = None
        if c == "\\":
            if i + 1 < n and pattern[i + 1] in "123456789":
                _refuse(pattern, "a backreference")
            i += 2
            continue
        if c == "[":  # a character class: one atom
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i = j + 1
            continue
        if c == "(":
            if pattern.startswith("(?P=", i):
                _refuse(pattern, "a backreference")
            frames.append([False, False])
            i += 1
            if pattern.startswith("?P<", i):  # a named group
                i = pattern.find(">", i) + 1 or n
            elif pattern.startswith("?", i):  # (?: (?= (?! (?<= (?<! and inline flags
                i += 1
                while i < n and pattern[i] in "aiLmsux-:=!<":
                    i += 1
            continue
        if c == ")":
            if len(frames) > 1:
                closed = frames.pop()
                frames[-1][0] |= closed[0]
                frames[-1][1] |= closed[1]
            i += 1
            continue
        if c == "|":
            frames[-1][1] = True
            i += 1
            continue
        q = re.match(r"[*+?]|\{(\d*)(,?)(\d*)\}", pattern[i:i + 40])
        if q:
            text, low, comma, high = q.group(0), q.group(1), q.group(2), q.group(3)
            unbounded = text in "*+" or (bool(comma) and not high)
            many = unbounded or int(high or low or 0) > 1  # may match its atom more than once
            variable = text in "*+?" or bool(comma) and low != high  # may match it a varying number of times
            if many and atom_group is not None and (atom_group[0] or atom_group[1]):
                _refuse(pattern, "a repeated group that itself repeats or alternates (exponential backtracking)")
            if variable:
                frames[-1][0] = True
            repeats += unbounded
            if repeats > MAX_PATTERN_REPEATS:
                _refuse(pattern, f"more than {MAX_PATTERN_REPEATS} unbounded repeats")
            i += len(q.group(0))
            if i < n and pattern[i] in "?+":  # lazy or possessive
                i += 1
            continue
        i += 1
    flags = re.match(r"\(\?([imsx]+)\)", pattern)  # global flags, matched alone by compressed-tensors: scoped here
    scoped = f"(?{flags.group(1)}:{pattern[flags.end():]})" if flags else pattern
    try:
        re.compile(f"(?:{scoped})")
    except re.error as e:
        _refuse(pattern, f"not a regular expression ({e})")
    return scoped


def _ignored(names: list[str], patterns: tuple[str, ...]) -> bool:
    if not patterns:
        return False
    rx = _ignore_regex(patterns)
    return any(rx.match(n) for n in names)


def left_unquantized(t: TensorSpec, composite: bool, s: QuantScheme) -> bool:
    """Whether the scheme's ignore list takes tensor t, or its `only` list (online targets) does not."""
    if s.method == "humming":
        return humming_skipped(t, composite, s)
    names = module_names(t, composite, s.fused_names)
    return _ignored(names, s.ignore) or (bool(s.only) and not _ignored(names, s.only))


def humming_skipped(t: TensorSpec, composite: bool, s: QuantScheme) -> bool:
    """vLLM 0.34.0 HummingConfig.is_layer_skipped on the layer vLLM builds for tensor t: the fused module (qkv_proj,
    gate_up_proj, the routed experts' layer) where t is one of its shards, else the module's names."""
    from .vllm.humming import skipped

    return skipped(humming_layer_names(t, composite), s.ignore)


def humming_layer_names(t: TensorSpec, composite: bool) -> list[str]:
    """The names vLLM's layer holding tensor t may go by: the fused module (qkv_proj, gate_up_proj, the routed
    experts' layer) where t is one of its shards, else the module's names."""
    base = re.sub(r"\.(weight|bias)$", "", t.name)
    fused = [base[: m.start()] + sub for p, sub in _FUSED if (m := re.search(p, base))]
    names = fused or module_names(t, False)
    if composite:
        names += [n.replace("model.", "model.language_model.", 1) for n in names]
    return names


# ---------------------------------------------------------------- bytes per matrix


def matrix_tensors(s: QuantScheme, out: int, inp: int) -> list[tuple[str, str, int]]:
    """(suffix, dtype, bytes) stored for one out x in Linear weight under scheme s."""
    m = out * inp
    g = s.group_size
    if s.method == "fp8_block":
        bo, bi = s.block
        return [("weight", "F8_E4M3", m),
                ("weight_scale_inv", s.scale_dtype, ceil(out / bo) * ceil(inp / bi) * dtype_bytes(s.scale_dtype))]
    if s.method in ("fp8_tensor", "fp8_channel", "int8_tensor", "int8_channel"):
        if s.pad_to:  # vLLM 0.34.0 kernels/linear/scaled_mm/cutlass.py CutlassFP8ScaledMMLinearKernel
            out, inp = ceil(out / s.pad_to) * s.pad_to, ceil(inp / s.pad_to) * s.pad_to  # .process_weights_after_loading
            m = out * inp
        scales = 1 if s.method.endswith("tensor") else out
        t = [("weight", "I8" if s.method.startswith("int8") else "F8_E4M3", m),
             ("weight_scale", s.scale_dtype, scales * dtype_bytes(s.scale_dtype))]
        return t + ([("input_scale", "float32", 4)] if s.static_input_scale else [])
    if s.method == "gptq":  # packed along the input dim, 32 / bits values per int32
        groups = ceil(inp / g) if g > 0 else 1
        return [("qweight", "I32", inp * s.bits // 32 * out * 4), ("qzeros", "I32", groups * (out * s.bits // 32) * 4),
                ("scales", "F16", groups * out * 2), ("g_idx", "I32", inp * 4)]
    if s.method == "awq":  # packed along the output dim
        groups = ceil(inp / g) if g > 0 else 1
        t = [("qweight", "I32", inp * (out * s.bits // 32) * 4), ("scales", "F16", groups * out * 2)]
        return t + ([("qzeros", "I32", groups * (out * s.bits // 32) * 4)] if s.zero_point else [])
    if s.method == "int_pack":  # compressed-tensors pack-quantized: int32 along the input dim
        groups = ceil(inp / g) if g > 0 else 1
        t = [("weight_packed", "I32", out * ceil(inp * s.bits / 32) * 4),
             ("weight_scale", s.scale_dtype, out * groups * dtype_bytes(s.scale_dtype)),
             ("weight_shape", "I64", 16)]  # torch.tensor(weight.shape): int64
        return t + ([("weight_zero_point", "I32", ceil(out * s.bits / 32) * groups * 4)] if s.zero_point else [])
    if s.method in ("nvfp4", "modelopt_nvfp4"):  # 2 values per byte, one fp8 scale per 16, a global fp32 scale
        names = ("weight_packed", "weight_global_scale", "input_global_scale") if s.method == "nvfp4" else \
            ("weight", "weight_scale_2", "input_scale")
        t = [(names[0], "U8", m // 2), ("weight_scale", "F8_E4M3", m // g), (names[1], "F32", 4)]
        return t + ([(names[2], "F32", 4)] if s.static_input_scale else [])
    if s.method == "ct_mxfp4":  # compressed-tensors: 2 values per byte, one e8m0 (uint8) scale per 32 of a row
        return [("weight_packed", "U8", m // 2), ("weight_scale", "U8", out * ceil(inp / 32))]
    if s.method in ("mxfp8", "ct_mxfp8"):  # 32 values -> 32 bytes of e4m3 + one e8m0 scale (uint8), per row
        return [("weight", "F8_E4M3", m), ("weight_scale", "U8", out * ceil(inp / 32))]
    if s.method == "mxfp4":  # 32 values -> 16 bytes of e2m1 + one e8m0 scale
        return [("blocks", "U8", m // 2), ("scales", "U8", m // 32)]
    if s.method in ("bnb_nf4", "bnb_fp4"):  # bitsandbytes blocksize 64 (Params4bit, QuantState.as_dict)
        blocks = ceil(m / 64)
        kind = "nf4" if s.method == "bnb_nf4" else "fp4"
        state = {"quant_type": kind, "blocksize": 64, "dtype": s.scale_dtype, "shape": [out, inp]}
        if s.double_quant:  # absmax in uint8, fp32 nested absmax per 256 blocks and its 256-entry code book
            state.update(nested_blocksize=256, nested_dtype="float32", nested_offset=0.0)
            absmax = [("absmax", "U8", blocks), ("nested_absmax", "F32", ceil(blocks / 256) * 4),
                      ("nested_quant_map", "F32", 256 * 4)]
        else:
            absmax = [("absmax", "F32", blocks * 4)]
        # the quant state is JSON in a uint8 tensor; nested_offset is a float whose repr takes 16-20
        # characters (0.0 above takes 3): 19 assumed, so the size is exact to 3 bytes per weight
        packed = len(json.dumps(state)) + (19 - 3 if s.double_quant else 0)
        return [("weight", "U8", ceil(m / 2)), *absmax, ("quant_map", "F32", 16 * 4),
                (f"quant_state.bitsandbytes__{kind}", "U8", packed)]
    if s.method == "humming":
        return humming_tensors(s, out, inp)
    if s.method == "bnb_int8":  # Int8Params: int8 weight, fp32 SCB per row, a one-byte weight_format
        return [("weight", "I8", m), ("SCB", "F32", out * 4), ("weight_format", "U8", 1)]
    raise NotModelledError(f"no storage rule for {s.method}")


def humming_tensors(s: QuantScheme, n: int, k: int, experts: int = 0) -> list[tuple[str, str, int]]:
    """(name, dtype, bytes) of one N x K module (`experts` of them stacked) in a Humming weight schema: humming
    (github.com/vllm-project/humming) humming/schema/humming.py HummingWeightSchema.get_tensors_attrs, the tensors
    vLLM 0.34.0's Humming methods create (and, at the padded N and K, keep after loading). scale_dtype: the stored
    scale's dtype (an fp8 / e8m0 one byte, else the model dtype's); the bias is the model's own tensor."""
    e = max(experts, 1)
    g = s.group_size or k
    sb = dtype_bytes(s.scale_dtype)
    out = [("weight", "I32", e * n * (k * s.bits // 32) * 4)]
    if s.scale_type == "group":
        out.append(("weight_scale", s.scale_dtype, e * n * (k // g) * sb))
    elif s.scale_type == "channel":
        out.append(("weight_scale", s.scale_dtype, e * n * sb))
    elif s.scale_type == "block":
        out.append(("weight_scale", "float32", e * (n // s.block[0]) * (k // g) * 4))
    elif s.scale_type == "tensor":
        out.append(("weight_scale", "float32", e * 4))
    if s.zero_point:
        out.append(("zero_point", s.scale_dtype if s.fp_zero_point else "I32",
                    e * n * (k // g) * sb if s.fp_zero_point else e * (n * s.bits // 32) * (k // g) * 4))
    if s.scale2 == "tensor":
        out.append(("weight_scale_2", "float32", e * 4))
    elif s.scale2 == "channel":
        out.append(("weight_scale_2", s.scale_dtype, e * n * sb))
    if s.static_input_scale and not experts:  # HummingInputSchema.get_tensors_attrs: one fp32 scale a module
        out.append(("input_scale", "float32", 4))
    return out


ITEM_BYTES = {"F8_E4M3": 1, "U8": 1, "I8": 1, "I32": 4, "I64": 8, "F16": 2, "F32": 4, "float32": 4, "bfloat16": 2, "float16": 2,
              "fp8": 1}


class QuantizedBytes(BaseModel):
    model_config = ConfigDict(frozen=True)

    scheme: QuantScheme
    total: int
    stored_elements: int  # elements of the stored tensors (packed words, scales...), as Hub file stats count them
    by_group: dict[str, int]
    quantized_params: int
    unquantized_params: int


def _plan(spec: ModelSpec, s: QuantScheme, include_mtp: bool = False) -> Iterator[tuple[TensorSpec, int, bool]]:
    composite = spec.vision is not None
    base = dtype_bytes(spec.dtype)
    for t in inventory(spec, include_mtp):
        role = group_of(t.name) if t.group == "mtp" else t.group  # an MTP layer's router is still a router
        mats = _matrices(t) if role in s.quantize_groups else []
        if s.method == "none" or not mats or (humming_skipped(t, composite, s) if s.method == "humming" else
                                              _ignored(module_names(t, composite), s.ignore)):
            yield t, prod(t.shape) * base, False
            continue
        yield t, sum(c * sum(b for _, _, b in matrix_tensors(s, o, i)) for c, o, i in mats), True


# The planner and the speed estimate ask for the same spec and scheme many times: keyed by the spec's identity
# (the entry holds the spec, so its id is not reused), the scheme and include_mtp; the value is frozen.
_QUANTIZED: Memo[tuple[ModelSpec, QuantizedBytes]] = Memo()


def quantized_bytes(spec: ModelSpec, scheme: QuantScheme | None = None, include_mtp: bool = False) -> QuantizedBytes:
    """Tensor bytes of `spec` under `scheme` (default: its own quantization_config).
    include_mtp: count the multi-token-prediction layers, as the checkpoint files hold them."""
    s = scheme or scheme_from_config(spec.quantization_config, spec)
    key = (id(spec), s, include_mtp)
    hit = _QUANTIZED.get(key)
    if hit is not None and hit[0] is spec:
        return hit[1]
    q = _quantized_bytes(spec, s, include_mtp)
    _QUANTIZED.put(key, (spec, q), layers_weight(len(spec.layers)))
    return q


def _quantized_bytes(spec: ModelSpec, s: QuantScheme, include_mtp: bool) -> QuantizedBytes:
    by_group = dict.fromkeys(GROUPS, 0)
    q = u = elements = 0
    for t, nbytes, quantized in _plan(spec, s, include_mtp):
        by_group[t.group] += nbytes
        if quantized:
            q += prod(t.shape)
            elements += sum(c * sum(b // ITEM_BYTES[d] for _, d, b in matrix_tensors(s, o, i)) for c, o, i in _matrices(t))
        else:
            elements += prod(t.shape)
            u += 0 if t.buffer else prod(t.shape)
    return QuantizedBytes(scheme=s, total=sum(by_group.values()), stored_elements=elements,
                          by_group={k: v for k, v in by_group.items() if v}, quantized_params=q, unquantized_params=u)


def quant_targets() -> dict[str, QuantTarget]:
    """Conversion targets by name (data/quant_targets.json)."""
    return load("quant_targets.json", QuantTargets).targets


def stand_in_family(spec: ModelSpec | None, name: str) -> StandInFamily | None:
    """The family of published third-party recipes (data/quant_targets.json stand_ins) a conversion of `spec` to
    target `name` stands in for, or None where vramcalc's own target applies as it is."""
    data = load("quant_targets.json", QuantTargets).stand_ins
    if spec is None or data is None:
        return None
    for fam in data.families.values():
        if spec.model_type in fam.model_types and name.lower() in fam.targets:
            return fam
    return None


def target_scheme(name: str, spec: ModelSpec | None = None) -> QuantScheme:
    """A named conversion target (`fp8`, `awq`, `nvfp4`, ...) as a QuantScheme. With `spec`: where published
    third-party checkpoints of its family leave more unquantized than the target's writer does by default, the
    family's default ignore list (stand_in_family) is applied."""
    t = quant_targets().get(name.lower())
    if t is None:
        raise InputError(f"unknown quantization {name!r}; known: {', '.join(quant_targets())}, gguf:<FTYPE> (e.g. gguf:Q4_K_M)")
    fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in t.model_dump(exclude_unset=True, exclude={"note", "vllm_runtime_flag"}).items()}
    fam = stand_in_family(spec, name)
    source = t.note
    if fam is not None:
        fields["ignore"] = tuple(fam.recipes[fam.default].ignore)
        source += f"; ignore list of {fam.default} ({fam.recipes[fam.default].url})"
    return QuantScheme.model_validate({"source": source, **fields})


def stand_in_messages(spec: ModelSpec, name: str) -> list[Message]:
    """A warning where a conversion stands in for third-party checkpoints whose ignore lists differ: the weights
    counted (the most conservative published recipe), the bracket between the recipes, and what gives exact bytes."""
    hit = stand_in_bracket(spec, name)
    if hit is None:
        return []
    fam, per = hit
    lo, hi = min(per, key=per.__getitem__), max(per, key=per.__getitem__)
    gib = 2**30
    return [warning("quant.stand_in_bracket",
                    f"{name} of {spec.id} stands in for a third-party checkpoint whose ignore list is unknown: its "
                    f"weights are counted with {fam.default}'s ({per[fam.default] / gib:.2f} GiB, the most bytes "
                    f"of the published recipes); the recipes give {per[lo] / gib:.2f} GiB ({lo}) to "
                    f"{per[hi] / gib:.2f} GiB ({hi})", fix=fam.fetch_hint)]


def stand_in_bracket(spec: ModelSpec, name: str, include_mtp: bool = False) -> tuple[StandInFamily, dict[str, int]] | None:
    """(family, weight bytes per published recipe) for a conversion that stands in for third-party checkpoints."""
    fam = stand_in_family(spec, name)
    if fam is None:
        return None
    base = target_scheme(name)
    return fam, {rid: quantized_bytes(spec, base.model_copy(update={"ignore": tuple(r.ignore)}), include_mtp).total
                 for rid, r in fam.recipes.items()}


def quant_name(quant: str | None, engine: str) -> str | None:
    """--quant as the engines write it: a llama.cpp file type (Q4_K_M, q4_k_m) is gguf:Q4_K_M under --engine llamacpp,
    and elsewhere when the name is only a file type (nvfp4, mxfp4 ... stay conversion targets)."""
    if not quant or ":" in quant:
        return quant
    from .ggml import ftypes

    ftype = quant.strip().upper()
    if ftype in ftypes() and (engine == "llamacpp" or quant.strip().lower() not in quant_targets()):
        return f"gguf:{ftype}"
    return quant
