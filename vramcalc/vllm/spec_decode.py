"""vLLM speculative decoding (--speculative-config): what the drafter adds to one rank, and its refusals.

Read as vLLM v0.33.0 reads the JSON (vllm/config/speculative.py SpeculativeConfig; data/vllm_spec.json):
- method: one of SpeculativeMethod; a per-model MTP name (deepseek_mtp, qwen3_5_mtp, ...) is replaced with mtp
  (__post_init__); no method: "draft_model" (or ngram for model "ngram"); mtp without a model drafts with the
  target's own MTP layers (n_predict of them), num_speculative_tokens defaulting to n_predict and, above it, a
  multiple of it.
- weights (vllm/v1/spec_decode/llm_base_proposer.py _maybe_share_embeddings, _maybe_share_lm_head): an MTP layer is
  one decoder layer of the target plus its 2h -> h projection and norms; the embedding and LM head are shared with
  the target. An EAGLE head or a
  draft model loads its own checkpoint, sharded over draft_tensor_parallel_size (1 or the target's TP).
- KV: the drafter's attention layers get KV specs beside the target's (GPUModelRunner.get_kv_cache_spec), so they
  join the target's KV cache groups and every block holds their pages too; hybrid (Mamba / GDN) state keeps
  num_speculative_tokens more conv steps and blocks (MambaSpec).
- ngram / suffix draft on the CPU from the prompt: no weights, no KV.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data_files import load
from ..data_models import SpecAcceptance, VllmSpec
from ..errors import InputError, NotModelledError
from ..kv import dtype_bytes
from ..messages import Message, error, warning
from ..quant import scheme_from_config
from ..spec import LayerSpec, ModelSpec
from .weights import weights_per_rank

SOURCE = "vllm/config/speculative.py SpeculativeConfig"
# SpeculativeConfig fields vramcalc reads; the class's other fields (data/vllm_spec.json config_fields) change
# nothing it models
READ = {"method", "num_speculative_tokens", "model", "draft_tensor_parallel_size", "tensor_parallel_size",
        "quantization", "max_model_len", "prompt_lookup_max", "prompt_lookup_min", "revision"}


def spec_rules() -> VllmSpec:
    """data/vllm_spec.json, typed."""
    return load("vllm_spec.json", VllmSpec)


def parse_speculative_config(value: str | dict[str, Any]) -> dict[str, Any]:
    """--speculative-config as JSON text (or the dict a library caller passes)."""
    if isinstance(value, dict):
        cfg = dict(value)
    else:
        try:
            cfg = json.loads(value)
        except json.JSONDecodeError as e:
            raise InputError(f"--speculative-config: not valid JSON ({e.msg} at character {e.pos}): {value!r}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"--speculative-config: expected a JSON object such as "
                         f"'{{\"method\":\"mtp\",\"num_speculative_tokens\":1}}', got {value!r}")
    unknown = sorted(set(cfg) - READ - set(spec_rules().config_fields))
    if unknown:
        raise InputError(f"--speculative-config: {', '.join(unknown)} is not a field of vLLM's SpeculativeConfig "
                         f"({SOURCE})")
    return cfg


class SpecPlan(BaseModel):
    """What --speculative-config adds to each rank."""

    model_config = ConfigDict(frozen=True)

    method: str
    num_speculative_tokens: int
    draft_model: str | None = None  # the draft checkpoint (None: the target's own MTP layers, or none)
    draft_layers: tuple[LayerSpec, ...] = ()  # attention layers whose KV joins the pool
    draft_dtype: str | None = None
    weight_bytes: int = 0  # per rank
    draft_spec: ModelSpec | None = None  # the drafter as a model (for its reads per draft step)
    acceptance: list[float] = []  # P(first i+1 drafts accepted), i < num_speculative_tokens; [] : no default
    acceptance_source: str = ""
    errors: list[Message] = []
    warnings: list[Message] = []


def _refusal(text: str) -> Message:
    return error("vllm.spec.config", f"{text} [{SOURCE}]", source=SOURCE)


def _plain_layer(spec: ModelSpec) -> LayerSpec:
    """The target's last attention layer without recurrent state: an MTP layer's attention and MLP (vLLM builds
    the MTP decoder layer from the target's config as a full-attention layer)."""
    full = [layer for layer in spec.layers if layer.attention is not None and layer.ssm is None
            and layer.attention.kind in ("full", "mla")]
    if not full:
        raise NotModelledError("MTP on a model without full-attention layers is not modelled")
    return full[-1]


def positions(acc: SpecAcceptance, k: int) -> list[float]:
    """P(the first i+1 drafts are all accepted) for i < k (data/vllm_spec.json _acceptance)."""
    if acc.per_position:
        out = list(acc.per_position[:k])
        ratio = acc.per_position[-1] / acc.per_position[-2] if len(acc.per_position) > 1 else acc.per_position[-1]
        while len(out) < k:
            out.append(out[-1] * ratio)
        return out
    a = acc.alpha or 0.0
    return [a ** (i + 1) for i in range(k)]


def acceptance_from_rate(rate: float, k: int) -> list[float]:
    """A stated per-token acceptance rate a: position i accepted with a^(i+1) (Leviathan et al. 2023, sec. 3.1)."""
    return [rate ** (i + 1) for i in range(k)]


def _default_acceptance(method: str, spec: ModelSpec, k: int) -> tuple[list[float], str]:
    table = spec_rules().acceptance
    acc = table.get(f"{method}:{spec.model_type}") or table.get(method)
    if acc is None:
        return [], (f"no published acceptance default for {method}: 1 token per step is planned (no speed-up); "
                    "state one with --spec-acceptance")
    return positions(acc, k), f"{acc.measured} ({acc.url})"


def _mtp_weight_bytes(spec: ModelSpec, n: int, tp: int, wdtype: str | None) -> int:
    """n MTP layers on one rank: the decoder layers as the target's (its quantization), plus the 2h -> h projection
    and three norms at the model dtype (vllm/model_executor/models/deepseek_mtp.py: eh_proj an nn.Linear, whole on
    every rank, enorm, hnorm, shared_head.norm; qwen3_5_mtp.py fc is column-parallel, counted whole here: at most
    2h^2 x 2 bytes over)."""
    layer = _plain_layer(spec)
    scheme = scheme_from_config(spec.quantization_config, spec)
    with_mtp = spec.model_copy(update={"layers": spec.layers + (layer,) * n})
    layers = weights_per_rank(with_mtp, tp, 1, scheme, wdtype)[0].bytes - weights_per_rank(spec, tp, 1, scheme, wdtype)[0].bytes
    b = dtype_bytes(wdtype or spec.dtype)
    h = spec.hidden_size
    return layers + n * (2 * h * h + 3 * h) * b


def _eagle3_head_delta(draft: ModelSpec, target: ModelSpec, tp: int, wdtype: str | None) -> int:
    """What an EAGLE-3 head holds beyond its config read as a plain Llama decoder, per rank (vLLM
    model_executor/models/llama_eagle3.py, vllm-project/vllm commit 00bd1493): layer 0's qkv_proj reads 2 x hidden
    (the token embedding and the hidden state concatenated; a QKVParallelLinear, split over TP), and the LM head
    has draft_vocab_size rows (ParallelLMHead, padded to 64, split over TP) plus draft_id_to_target_id, one int64
    per row. Its embedding is the target's when the shapes match (PP 1): vLLM shares it where the head has none or
    an identical copy (llm_base_proposer.py _maybe_share_embeddings; vLLM-Ascend issue #2667's log: "The EAGLE head
    shares the same vocab embedding with the target model"), so it is not counted again."""
    from .weights import padded_vocab

    b = dtype_bytes(wdtype or draft.dtype)
    h = draft.hidden_size
    n = 0
    if draft.vocab_size == target.vocab_size and h == target.hidden_size:
        n -= padded_vocab(draft.vocab_size) // tp * h * b
    a = draft.layers[0].attention if draft.layers else None
    if a is not None and a.mla is None:
        kv = max(1, a.num_kv_heads // tp)
        n += (a.num_heads // tp * a.head_dim_k + kv * (a.head_dim_k + a.head_dim_v)) * h * b
    dv = draft.draft_vocab_size
    if dv and not draft.tie_word_embeddings:
        n -= (padded_vocab(draft.vocab_size) - padded_vocab(dv)) // tp * h * b
        n += dv * 8
    return n


def plan_speculative(cfg: dict[str, Any], spec: ModelSpec, tp: int, pp: int, max_model_len: int,
                     wdtype: str | None, draft: ModelSpec | None = None, rate: float | None = None) -> SpecPlan:
    """The drafter's weights per rank, its KV layers and vLLM's refusals for `cfg` (parse_speculative_config) on
    `spec` at TP `tp`. `draft`: the draft checkpoint's spec (read from cfg["model"] when not given)."""
    rules = spec_rules()
    errors: list[Message] = []
    warnings: list[Message] = []
    method = cfg.get("method")
    model = cfg.get("model")
    k = cfg.get("num_speculative_tokens")
    if "tensor_parallel_size" in cfg:  # SpeculativeConfig._verify_args
        errors.append(_refusal("'tensor_parallel_size' is not a valid argument in the speculative_config. Please pass "
                               "'draft_tensor_parallel_size' instead."))
    if method is not None and method not in rules.methods and method not in rules.mtp_aliases:
        names = [*rules.methods, *rules.mtp_aliases]
        errors.append(_refusal("1 validation error for SpeculativeConfig: method: Input should be "
                               + ", ".join(f"'{m}'" for m in names[:-1]) + f" or '{names[-1]}' [input_value={method!r}]"))
        return SpecPlan(method=str(method), num_speculative_tokens=0, errors=errors)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k <= 0):
        errors.append(_refusal(f"Expected num_speculative_tokens to be greater than zero ({k})."))
        return SpecPlan(method=str(method), num_speculative_tokens=0, errors=errors)
    if method is None:  # __post_init__: inferred from the model
        method = "ngram" if model in ("ngram", "[ngram]") else "draft_model"
    if method in rules.mtp_aliases:
        warnings.append(warning("vllm.spec.deprecated_method", f"method `{method}` is deprecated and replaced with mtp.",
                                source=SOURCE))
        method = "mtp"
    if method == "[ngram]":
        method = "ngram"
    if method not in rules.modelled:
        raise NotModelledError(f"--speculative-config method {method!r}: vramcalc models "
                               f"{', '.join(rules.modelled)}")
    if pp > 1:
        raise NotModelledError("speculative decoding with --pipeline-parallel-size > 1 is not modelled")
    if model is None and method in ("draft_model", "eagle", "eagle3", "dflash"):
        if k is not None:
            errors.append(_refusal("num_speculative_tokens was provided but without speculative model."))
        else:
            errors.append(_refusal("num_speculative_tokens must be provided with speculative model unless the draft "
                                   "model config contains an n_predict parameter."))
        return SpecPlan(method=method, num_speculative_tokens=0, errors=errors)

    if method in ("ngram", "suffix"):
        if method == "suffix":
            warnings.append(warning("vllm.spec.suffix_needs_arctic", "suffix decoding needs Arctic Inference "
                                    "(`pip install arctic-inference`); vLLM raises ImportError without it",
                                    source=SOURCE))
            k = k or 24  # _validate_suffix_decoding: suffix_decoding_max_tree_depth
        lo, hi = cfg.get("prompt_lookup_min"), cfg.get("prompt_lookup_max")
        if method == "ngram" and lo is not None and hi is not None and lo > hi:
            errors.append(_refusal(f"prompt_lookup_min={lo} must be <= prompt_lookup_max={hi}"))
        if k is None:
            errors.append(_refusal("num_speculative_tokens must be provided with speculative model unless the draft "
                                   "model config contains an n_predict parameter."))
            return SpecPlan(method=method, num_speculative_tokens=0, errors=errors, warnings=warnings)
        acc, src = _acceptance(method, spec, k, rate)
        return SpecPlan(method=method, num_speculative_tokens=k, acceptance=acc, acceptance_source=src,
                        errors=errors, warnings=warnings)

    draft_tp = cfg.get("draft_tensor_parallel_size")
    if draft_tp is not None and draft_tp not in (1, tp):  # _verify_and_get_draft_tp
        errors.append(_refusal(f"speculative_draft_tensor_parallel_size={draft_tp} cannot be other value than 1 or "
                               "target model tensor_parallel_size"))
    elif draft_tp == 1 and tp > 1:
        raise NotModelledError("draft_tensor_parallel_size 1 under a larger target TP is not modelled")

    if method == "mtp" and model is None:
        field = rules.mtp_model_types.get(spec.model_type)
        if field is None or field.startswith("_"):
            raise NotModelledError(f"MTP for model type {spec.model_type!r}: vramcalc models the MTP layers of "
                                   + ", ".join(m for m in rules.mtp_model_types if not m.startswith("_")))
        n = spec.mtp_layers or rules.mtp_default_layers.get(spec.model_type, 0)
        if not n:
            raise NotModelledError(f"the config names no MTP layers ({field} is 0 or absent): vLLM has no MTP "
                                   "weights to load for this checkpoint")
        if k is None:
            k = n
        elif k > n and k % n:
            errors.append(_refusal(f"num_speculative_tokens:{k} must be divisible by n_predict={n}"))
        if k > 1 and spec.model_type not in ("step3p5",):
            warnings.append(warning("vllm.spec.mtp_reuse", "Enabling num_speculative_tokens > 1 will run multiple "
                                    "times of forward on same MTP layer,which may result in lower acceptance rate",
                                    source=SOURCE))
        layer = _plain_layer(spec)
        weight = _mtp_weight_bytes(spec, n, tp, wdtype)
        dspec = spec.model_copy(update={"id": f"{spec.id} (MTP)", "layers": (layer,) * n, "tie_word_embeddings": False,
                                        "vision": None, "mtp_layers": 0})
        acc, src = _acceptance(method, spec, k, rate)
        return SpecPlan(method=method, num_speculative_tokens=k, draft_layers=(layer,) * n, weight_bytes=weight,
                        draft_spec=dspec, acceptance=acc, acceptance_source=src, errors=errors, warnings=warnings)

    if draft is None:
        from ..sources import load_model

        draft = load_model(str(model))
    if k is None:
        errors.append(_refusal("A speculative model was provided, but `num_speculative_tokens` was not provided"))
        return SpecPlan(method=method, num_speculative_tokens=0, draft_model=str(model), errors=errors,
                        warnings=warnings)
    if method == "draft_model" and draft.vocab_size != spec.vocab_size:  # verify_equal_vocab_size_if_draft_model
        errors.append(_refusal(f"Target and draft model should have the same vocabulary size. Target model "
                               f"vocab_size={spec.vocab_size}. Draft model vocab_size={draft.vocab_size}. Using models "
                               "with different tokenizers can cause out-of-bounds errors during speculative decoding."))
    smax = cfg.get("max_model_len")
    dmax = draft.max_position_embeddings or max_model_len
    if smax is not None and smax > dmax:  # _maybe_override_draft_max_model_len
        errors.append(_refusal(f"speculative_max_model_len={smax} cannot be larger than draft_max_model_len={dmax}"))
    elif smax is not None and smax > max_model_len:
        errors.append(_refusal(f"speculative_max_model_len={smax} cannot be larger than "
                               f"target_max_model_len={max_model_len}"))
    if method == "dflash":
        return _plan_dflash(cfg, spec, draft, tp, k, wdtype, rate, errors, warnings)
    scheme = scheme_from_config(draft.quantization_config, draft)
    weight = weights_per_rank(draft, tp, 1, scheme, wdtype if draft.dtype == spec.dtype else None)[0].bytes
    if method in ("eagle", "eagle3"):
        h = draft.hidden_size  # the fc projection of the target's hidden states (data/vllm_spec.json eagle_fc_inputs)
        weight += rules.eagle_fc_inputs[method] * h * h * dtype_bytes(wdtype or draft.dtype)
    if method == "eagle3":
        weight += _eagle3_head_delta(draft, spec, tp, wdtype)
    if method in ("eagle", "eagle3"):
        text = (f"eagle head {model}: its embedding and LM head are counted as its checkpoint holds them (vLLM "
                "shares the target's where the head has none)") if method == "eagle" else (
                f"eagle3 head {model}: the target's embedding is shared (vLLM shares it where the head has none or an "
                "identical copy; a head with its own distinct embedding holds vocab x hidden more), the LM head has "
                "draft_vocab_size rows and layer 0 reads 2 x hidden (vllm/model_executor/models/llama_eagle3.py)")
        warnings.append(warning("vllm.spec.eagle_head", text,
                                source="vllm/v1/spec_decode/llm_base_proposer.py _maybe_share_embeddings"))
    acc, src = _acceptance(method, spec, k, rate)
    return SpecPlan(method=method, num_speculative_tokens=k, draft_model=str(model), draft_layers=draft.layers,
                    draft_dtype=draft.dtype, weight_bytes=weight, draft_spec=draft, acceptance=acc,
                    acceptance_source=src, errors=errors, warnings=warnings)


DFLASH_SOURCE = "vllm/model_executor/models/qwen3_dflash.py DFlashQwen3Model (vLLM v0.34.0)"


def _dflash_weight_bytes(draft: ModelSpec, target: ModelSpec, tp: int, wdtype: str | None) -> int:
    """A DFlash drafter's bytes on one rank, as vLLM v0.34.0 builds it (vllm/model_executor/models/qwen3_dflash.py):
    - its decoder layers (QKV / o / gate-up / down split over TP, q/k norms and two layer norms whole; with
      attention_bias the QKV and the o_proj biases);
    - fc, a ReplicatedLinear (whole on every rank) from target_hidden_size x the aux layers (dflash_config.
      target_layer_ids, eagle3_utils.get_eagle3_aux_layers_from_config; else num_hidden_layers) to hidden, at
      the model dtype, absent when use_aux_hidden_state is false;
    - hidden_norm, norm and mask_embedding, one hidden vector each;
    - draft_id_to_target_id, one int64 per draft_vocab_size row, when that differs from the target's vocab;
    - on a GPU with unquantized layers, the context K/V weight _build_fused_kv_buffers stacks after loading:
      every layer's K and V rows of qkv_proj again (_reads_raw_weights).
    Its embed_tokens and lm_head are the target's (vllm/v1/worker/gpu/spec_decode/dflash/utils.py
    load_dflash_model: maybe_share_target_embed, and the lm_head where the drafter has none of its own)."""
    c = draft.config or {}
    dc = {**(c.get("eagle_config") or {}), **(c.get("dflash_config") or {})}
    dwd = wdtype if draft.dtype == target.dtype else None
    scheme = scheme_from_config(draft.quantization_config, draft)
    twice = draft.model_copy(update={"layers": draft.layers * 2})  # the layers' own bytes: twice them less once
    layers = weights_per_rank(twice, tp, 1, scheme, dwd)[0].bytes - weights_per_rank(draft, tp, 1, scheme, dwd)[0].bytes
    b = dtype_bytes(wdtype or target.dtype)
    h = draft.hidden_size
    n = layers + 3 * h * b
    if dc.get("use_aux_hidden_state", c.get("use_aux_hidden_state", True)):
        ids = c.get("eagle_aux_hidden_state_layer_ids") or dc.get("target_layer_ids")
        aux = len(ids) if ids else draft.num_layers
        n += (c.get("target_hidden_size") or h) * aux * h * b
    if c.get("attention_bias", False):  # DFlashQwen3Attention: o_proj biased too with attention_bias (whole per rank),
        # where transformers' Qwen3 (as vramcalc reads the config) has none
        n += sum(h for layer in draft.layers if layer.attention is not None and not layer.attention.o_bias) \
            * dtype_bytes(dwd or draft.dtype)
    dv = draft.draft_vocab_size or draft.vocab_size
    if dv != target.vocab_size:
        n += dv * 8
    if scheme.method == "none":  # _reads_raw_weights
        db = dtype_bytes(dwd or draft.dtype)
        for layer in draft.layers:
            a = layer.attention
            if a is not None:
                n += 2 * max(1, a.num_kv_heads // tp) * a.head_dim_k * (h + (1 if a.qkv_bias else 0)) * db
    return n


def _plan_dflash(cfg: dict[str, Any], spec: ModelSpec, draft: ModelSpec, tp: int, k: int, wdtype: str | None,
                 rate: float | None, errors: list[Message], warnings: list[Message]) -> SpecPlan:
    """DFlash: a block drafter reading the target's hidden states; its attention layers (non-causal, full or
    sliding-window as the config resolves them, sources/hf_config.py _dflash_layer_types) get KV specs
    beside the target's and join the pool, as EAGLE's do."""
    if draft.architecture not in spec_rules().dflash_architectures:
        raise NotModelledError(f"dflash drafter architecture {draft.architecture!r}: vramcalc models "
                               + ", ".join(spec_rules().dflash_architectures))
    dc = (draft.config or {}).get("dflash_config") or {}
    if dc.get("sample_from_anchor", False):  # vllm/v1/worker/gpu/spec_decode/dflash/speculator.py DFlashSpeculator
        errors.append(_refusal("sample_from_anchor=True is not supported for DFlash. DFlash uses a fixed 1+N query "
                               "layout where the anchor is the bonus token."))
    if scheme_from_config(draft.quantization_config, draft).method != "none":
        raise NotModelledError("a quantized DFlash drafter is not modelled: its fc takes the drafter's quantization "
                               "(qwen3_dflash.py DFlashQwen3Model, ReplicatedLinear with the draft quant_config) and "
                               "the fused context K/V weight exists only for plain weights (_reads_raw_weights); "
                               "vramcalc's oracle covers unquantized drafters only")
    weight = _dflash_weight_bytes(draft, spec, tp, wdtype)
    warnings.append(warning("vllm.spec.dflash_head", f"dflash drafter {cfg.get('model')}: the target's embedding "
                            "and LM head are shared (a checkpoint with its own lm_head or embed_tokens holds "
                            "vocab x hidden more each); the fused context K/V weight vLLM builds after loading is "
                            "counted", source=DFLASH_SOURCE))
    acc, src = _acceptance("dflash", spec, k, rate)
    return SpecPlan(method="dflash", num_speculative_tokens=k, draft_model=str(cfg.get("model")),
                    draft_layers=draft.layers, draft_dtype=draft.dtype, weight_bytes=weight, draft_spec=draft,
                    acceptance=acc, acceptance_source=src, errors=errors, warnings=warnings)


def _acceptance(method: str, spec: ModelSpec, k: int, rate: float | None) -> tuple[list[float], str]:
    if rate is not None:
        if not 0 <= rate < 1:
            raise InputError(f"--spec-acceptance {rate}: a per-token acceptance rate in [0, 1)")
        return acceptance_from_rate(rate, k), f"stated per-token acceptance rate {rate}"
    return _default_acceptance(method, spec, k)


def acceptance_warning(plan: SpecPlan) -> Message:
    """What the speed estimate assumes for the drafts (the acceptance depends on the workload: code and
    repetitive text accept more than open-ended prose)."""
    if not plan.acceptance:
        return warning("vllm.spec.acceptance", f"speed: {plan.acceptance_source}", fix="--spec-acceptance RATE")
    return warning("vllm.spec.acceptance", f"speed: the estimate assumes {plan.method} drafts accepted "
                   f"{', '.join(f'{a:.2f}' for a in plan.acceptance)} by position "
                   f"({tokens_per_step(plan.acceptance):.2f} tokens per verify step; a published measurement, named on "
                   "the speed line: the rate varies with the workload)", fix="--spec-acceptance RATE")


class SpecSummary(BaseModel):
    """--speculative-config as vramcalc planned it (the result's `speculative`)."""

    model_config = ConfigDict(frozen=True)

    method: str
    num_speculative_tokens: int
    draft_model: str | None
    draft_weight_bytes: int  # per rank
    draft_kv_layers: int  # attention layers the drafter adds to the KV pool
    acceptance_per_position: list[float]  # P(first i+1 drafts accepted)
    tokens_per_step: float  # expected tokens one verify step emits per sequence
    acceptance_source: str


def summary(plan: SpecPlan) -> SpecSummary:
    return SpecSummary(method=plan.method, num_speculative_tokens=plan.num_speculative_tokens,
                       draft_model=plan.draft_model, draft_weight_bytes=plan.weight_bytes,
                       draft_kv_layers=sum(1 for layer in plan.draft_layers if layer.attention is not None),
                       acceptance_per_position=[round(a, 4) for a in plan.acceptance],
                       tokens_per_step=round(tokens_per_step(plan.acceptance), 3), acceptance_source=plan.acceptance_source)


def tokens_per_step(acceptance: list[float]) -> float:
    """Expected tokens a verify step emits per sequence: the bonus token plus each accepted draft
    (E = 1 + sum_i P(first i+1 accepted); Leviathan et al. 2023, arXiv:2211.17192, eq. 1 for i.i.d. a)."""
    return 1.0 + sum(acceptance)
