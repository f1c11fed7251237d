"""VLLM_KV_CACHE_LAYOUT: the attention backends vLLM picks per layer on an NVIDIA GPU, the KV cache layouts they
accept together, and the start-up refusal of a layout outside them (data/vllm_platforms.json attention.per_layer
and attention.kv_cache_layout; vLLM 0.34.0 vllm/v1/attention/backends/utils.py resolve_kv_cache_layout).
Checked against tests/data/vllm_kv_layout_backend_oracle_v0.34.0.json (tools/vllm_kv_layout_backend_oracle.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..gpus import GPU
from ..messages import Message, error, note, warning
from ..spec import ModelSpec
from .rules import SELECTABLE, _vkey, vllm_platforms

SOURCE = "vllm/v1/attention/backends/utils.py resolve_kv_cache_layout (v0.34.0)"


class LayoutResolution(BaseModel):
    """What vLLM's start-up makes of VLLM_KV_CACHE_LAYOUT on this GPU."""

    model_config = ConfigDict(frozen=True)

    backends: dict[str, str]  # a layer kind ("head 128", "head 512 sinks", "MLA") -> the backend it runs
    supported: list[str]  # the worker's layouts, most preferred first (get_supported_kv_cache_layouts)
    candidates: list[str]  # what resolve_kv_cache_layout keeps after the mixed-shape rule
    layout: str | None  # the layout chosen; None: refused
    refusal: str | None = None  # vLLM's words


def _fa_version(major: int, forced_fa4: bool) -> int:
    """vllm/v1/attention/backends/fa_utils.py get_flash_attn_version: 3 on SM 9.x, 4 on SM 10.x, else 2; FA4 where
    Gemma4Config sets attention_config.flash_attn_version = 4."""
    if forced_fa4:
        return 4
    return vllm_platforms().attention.per_layer.fa_version_by_cc_major.get(str(major), 2)


def _fa_resolved(major: int, head: int, sinks: bool, forced_fa4: bool, fp8: bool, mm_prefix: bool,
                 softcap: bool) -> int:
    """The FA version a layer of this head size resolves (vllm/v1/attention/backends/fa_utils.py
    get_flash_attn_version, supports_fa4_hd256 as FlashAttentionBackend.supports_combination passes it;
    data/vllm_platforms.json attention.per_layer._source)."""
    pl = vllm_platforms().attention.per_layer
    version = _fa_version(major, forced_fa4 and major in pl.fa4_cc_major)
    if version == 3 and major == 9 and major in pl.fa4_cc_major and head > pl.fa_max_head_size:
        version = 4  # FA3 does not take head sizes above 256 on SM 9.0: upgraded to FA4
    if version == 4 and head == 256 and major in pl.fa4_hd256_cc_major:
        if sinks or softcap or fp8 or mm_prefix:  # _fa4_hd256_fallback_reason
            version = 2
    elif version == 4 and major >= 10 and head > pl.fa4_blackwell_max_head_size:
        version = 2  # TMEM capacity
    return version


def _fa_reads_fp8(kv_dtype: str, major: int, version: int, head: int | None) -> bool:
    """fa_utils.py flash_attn_supports_kv_cache_dtype: FA3, or FA4 at head size 512, on SM 9.x; FA4 on SM 10.x."""
    return kv_dtype != "fp8_e5m2" and ((major == 9 and (version == 3 or (version == 4 and head in (None, 512))))
                                       or (major == 10 and version == 4))


def reasons(name: str, cc: float, head: int, sinks: bool, kv_dtype: str, forced_fa4: bool, mm_prefix: bool = False,
            version: str | None = None, softcap: bool = False) -> list[str]:
    """AttentionBackend.validate_configuration for one decoder layer of a plain backend (FLASH_ATTN, FLASHINFER,
    TRITON_ATTN), in vLLM's words and order (data/vllm_platforms.json attention.per_layer._source);
    [] where it runs. `version`: the vLLM release, for FlashAttention's fp8 words (default the newest)."""
    rules = vllm_platforms().attention
    pl = rules.per_layer
    words = pl.reasons
    major = int(cc)
    fp8 = kv_dtype.startswith("fp8")
    out: list[str] = []
    if name == "FLASH_ATTN":
        fa4 = major in pl.fa4_cc_major
        base = _fa_version(major, forced_fa4 and fa4)  # what the checks without a head size read
        if head % pl.fa_head_sizes_multiple_of or head > (pl.fa4_max_head_size if fa4 else pl.fa_max_head_size):
            out.append(words["head_size"])
        if fp8 and not _fa_reads_fp8(kv_dtype, major, base, None):
            out.append(words["kv_cache_dtype"])
        if mm_prefix and not fa4:  # supports_mm_prefix: FA4 runs here
            out.append(words["mm_prefix"])
        if sinks and base not in (3, 4):  # flash_attn_supports_sinks
            out.append(words["sinks"])
        if cc < rules.FLASH_ATTN.min_cc:
            out.append(words["compute_capability"])
        resolved = _fa_resolved(major, head, sinks, forced_fa4, fp8, mm_prefix, softcap)
        if sinks and cc < pl.fa_sink_min_cc:  # supports_combination: the first that applies
            out.append(words["fa_sink_cc"])
        elif mm_prefix and fp8 and cc == 9.0:
            out.append(words["fa_fp8_mm_prefix_sm90"])
        elif fp8 and not _fa_reads_fp8(kv_dtype, major, resolved, head):
            texts = sorted(pl.fa_fp8_reason.items(), key=lambda kv: _vkey(kv[0]))
            out.append(next((t for since, t in reversed(texts) if version is None or _vkey(version) >= _vkey(since)),
                            texts[0][1]))
        elif mm_prefix and resolved != 4:
            out.append(words["fa_mm_prefix"])
        return out
    if name == "FLASHINFER":
        fi = rules.FLASHINFER
        if head not in pl.flashinfer_head_sizes:
            out.append(words["head_size"])
        if kv_dtype not in pl.flashinfer_kv_dtypes:
            out.append(words["kv_cache_dtype"])
        if mm_prefix:  # AttentionBackend.supports_mm_prefix
            out.append(words["mm_prefix"])
        # FlashInferBackend.supports_sink: the TRT-LLM kernels, whose cubins vLLM takes as reachable (the NVIDIA
        # artifactory, or flashinfer-cubin installed: vllm/utils/flashinfer.py has_nvidia_artifactory): XQA decode
        # on SM 9.0 / 12.x, both phases on SM 10.x
        if sinks and not (cc == 9.0 or major in (10, 12)):
            out.append(words["sinks"])
        if not fi.min_cc <= cc <= fi.max_cc:
            out.append(words["compute_capability"])
        return out
    return out  # TRITON_ATTN: every head size from 32, KV dtype and GPU


def _valid(name: str, cc: float, head: int, sinks: bool, kv_dtype: str, forced_fa4: bool,
           mm_prefix: bool = False, softcap: bool = False) -> bool:
    """AttentionBackend.validate_configuration for one decoder layer (data/vllm_platforms.json attention.per_layer)."""
    pl = vllm_platforms().attention.per_layer
    major = int(cc)
    if name in pl.mm_prefix.composite.values():  # Triton for the image prefix, the other for causal requests
        if head not in pl.mm_prefix.composite_head_sizes or pl.mm_prefix.composite.get(str(major)) != name:
            return False
        other = "FLASH_ATTN" if name == "TRITON_FLASH_ATTN" else "FLASHINFER"
        if other == "FLASH_ATTN" and _fa_version(major, forced_fa4 and major in pl.fa4_cc_major) not in (3, 4):
            return False  # triton_flash_attn.py: the causal route requires FlashAttention v3 or v4
        return _valid(other, cc, head, sinks, kv_dtype, forced_fa4, softcap=softcap)
    return not reasons(name, cc, head, sinks, kv_dtype, forced_fa4, mm_prefix, softcap=softcap)


def softcap(spec: ModelSpec) -> bool:
    """The model's attention logits are soft-capped (hf_text_config.attn_logit_softcapping, which fa_utils.py
    _fa4_hd256_fallback_reason reads)."""
    cfg = spec.config or {}
    text = cfg.get("text_config")
    return bool((text if isinstance(text, dict) else cfg).get("attn_logit_softcapping"))


def forced_fa4(spec: ModelSpec, gpu: GPU, kv_dtype: str, name: str | None) -> tuple[bool, str | None]:
    """Gemma4Config.verify_and_update_config (model_executor/models/config.py): a Gemma 4 model whose layers mix
    head sizes runs FA4 (attention_config.flash_attn_version = 4) where FA4 runs and the largest head is at most 512,
    with no --attention-backend or FLASH_ATTN and not an fp8 KV cache on SM 9.x; elsewhere, with no backend named,
    TRITON_ATTN for every layer. (FA4 forced, the backend then selected or None.)"""
    pl = vllm_platforms().attention.per_layer
    major = int(float(gpu.compute_capability or "0"))
    heads = sorted({a.head_dim_k for la in spec.layers if (a := la.attention) is not None and not a.latent_cache})
    if spec.model_type in pl.heterogeneous_heads_model_types and len(heads) > 1:
        if major in pl.fa4_cc_major and heads[-1] <= pl.fa4_max_head_size:
            return name in (None, "FLASH_ATTN") and not (major == 9 and kv_dtype.startswith("fp8")), name
        if name is None:
            return False, "TRITON_ATTN"
    return False, name


def mm_prefix_lm(spec: ModelSpec, mm_inputs: bool = True) -> bool:
    """ModelConfig.is_mm_prefix_lm: image tokens attend bidirectionally (data/vllm_platforms.json
    attention.per_layer.mm_prefix); off where multimodal inputs are configuration-disabled (`mm_inputs` False)."""
    if spec.vision is None or not mm_inputs or not spec.config:
        return False
    r = vllm_platforms().attention.per_layer.mm_prefix
    cfg = spec.config
    if "is_mm_prefix_lm" in cfg:
        return bool(cfg["is_mm_prefix_lm"])
    mt = cfg.get("model_type")
    if mt in r.bidirectional_vision_model_types:
        text = cfg.get("text_config")
        return (text if isinstance(text, dict) else cfg).get("use_bidirectional_attention") == "vision"
    return mt in r.model_types


def layer_backends(spec: ModelSpec, gpu: GPU, kv_dtype: str, forced: str | None = None,
                   mm_inputs: bool = True) -> dict[str, str]:
    """The backend each kind of attention layer runs on a CUDA GPU (vllm/platforms/cuda.py
    CudaPlatform.get_attn_backend_cls, per layer); {} off NVIDIA. MLA layers are one kind, "MLA": their backends
    declare no KV cache layout, which backend it is is not modelled here. `mm_inputs`: multimodal inputs are not
    configuration-disabled (no --language-model-only, not every limit 0)."""
    cc = gpu.compute_capability
    if (gpu.vendor or "nvidia") != "nvidia" or not cc:
        return {}
    from .kv import kv_formats

    rules = vllm_platforms().attention
    pl = rules.per_layer
    value, major = float(cc), int(float(cc))
    attn = [la.attention for la in spec.layers if la.attention is not None]
    out: dict[str, str] = {}
    if any(a.latent_cache for a in attn):
        out["MLA"] = "MLA"
    attn = [a for a in attn if not a.latent_cache]
    if not attn:
        return out
    if (packed := kv_formats().formats.get(kv_dtype)) is not None:  # one CUDA backend takes each packed dtype
        out[f"KV {kv_dtype}"] = packed.backend
        return out
    fa4, name = forced_fa4(spec, gpu, kv_dtype, forced.upper() if forced else None)
    cap = softcap(spec)
    mm = mm_prefix_lm(spec, mm_inputs)
    order = rules.priorities.get(str(major), rules.priorities["default"])
    if mm and (composite := pl.mm_prefix.composite.get(str(major))):
        order = [composite, *order]
    for a in attn:
        key = f"head {a.head_dim_k}" + (" sinks" if a.sinks else "")
        if key in out:
            continue
        if name is not None:  # the selected backend, validated alone (rules.attention_backend refuses it)
            out[key] = name
            continue
        out[key] = next((b for b in order if _valid(b, value, a.head_dim_k, a.sinks, kv_dtype, fa4, mm, cap)),
                        "TRITON_ATTN")
    return out


def _declared(backend: str, major: int, version: str | None) -> list[str] | None:
    """AttentionBackend.supported_kv_cache_layouts: the layouts a backend declares, or None."""
    r = vllm_platforms().attention.kv_cache_layout
    sets = r.declared.get(backend)
    if sets is None:
        return None
    key = str(major) if str(major) in sets else "default"
    last = r.undeclared_through.get(f"{backend}.{key}")
    if last is not None and version is not None and _vkey(version) <= _vkey(last):
        return None
    return sets.get(key)


def _merge(lists: list[list[str]]) -> list[str]:
    """vllm/v1/attention/backends/utils.py _merge_supported_layouts."""
    r = vllm_platforms().attention.kv_cache_layout
    if all(x == lists[0] for x in lists[1:]):
        return list(lists[0])
    firsts = [x[0] for x in lists]
    common = set.intersection(*map(set, lists))
    # sorted(..., reverse=True) on the count keeps enum order among ties (a stable sort)
    return sorted((m for m in r.enum_order if m in common), key=lambda m: firsts.count(m), reverse=True)


def _mixed_shapes(spec: ModelSpec, kv_skip: bool) -> bool:
    """More than one (heads, states, page size) among the KV specs (resolve_kv_cache_layout hnc_shapes):
    attention layers of different head counts or sizes, a KV dtype that skips some layers, or Mamba-type state
    beside attention."""
    attn = {(1 if a.latent_cache else a.num_kv_heads, a.head_dim_k, a.head_dim_v)
            for la in spec.layers if (a := la.attention) is not None and a.kv_shared_from is None}
    ssm = any(la.ssm is not None for la in spec.layers)
    return len(attn) > 1 or (bool(attn) and ssm) or (kv_skip and bool(attn))


def resolve(spec: ModelSpec, gpu: GPU, kv_dtype: str, requested: str | None, version: str | None = None,
            forced: str | None = None, kv_skip: bool = False, extensible_connector: bool = False,
            mm_inputs: bool = True) -> LayoutResolution | None:
    """resolve_kv_cache_layout for one worker; None off NVIDIA (ROCm's selection is not modelled)."""
    backends = layer_backends(spec, gpu, kv_dtype, forced, mm_inputs)
    if not backends:
        return None
    r = vllm_platforms().attention.kv_cache_layout
    major = int(float(gpu.compute_capability or "0"))
    lists = [d for b in dict.fromkeys(backends.values()) if (d := _declared(b, major, version)) is not None]
    supported = _merge(lists) if lists else list(r.default_preference)
    candidates = supported
    if _mixed_shapes(spec, kv_skip):
        candidates = [m for m in candidates if m in r.block_compact]
        if not candidates:
            return LayoutResolution(backends=backends, supported=supported, candidates=[], layout=None,
                                    refusal=r.mixed_refused.format(supported=[supported]))
    if extensible_connector:  # an extensible KV cache with a KV connector: block-compact only
        candidates = [m for m in candidates if m in r.block_compact]
    if requested is not None:
        layout = r.aliases.get(requested, requested)
        if layout not in candidates:
            return LayoutResolution(backends=backends, supported=supported, candidates=candidates, layout=None,
                                    refusal=r.refused.format(requested=requested, valid=candidates))
        return LayoutResolution(backends=backends, supported=supported, candidates=candidates, layout=layout)
    return LayoutResolution(backends=backends, supported=supported, candidates=candidates, layout=candidates[0])


def messages(spec: ModelSpec, gpu: GPU, kv_dtype: str, requested: str | None, version: str | None = None,
             forced: str | None = None, kv_skip: bool = False, extensible_connector: bool = False,
             mm_inputs: bool = True) -> list[Message]:
    """VLLM_KV_CACHE_LAYOUT set: vLLM's refusal in its words, or a note naming the layout and the backends; the
    KV figures do not change (tests/data/vllm_kv_layout_oracle_v0.33.0.json)."""
    if requested is None:
        return []
    if forced is not None and forced.upper() not in SELECTABLE:
        return []  # rules.attention_backend refuses it as not modelled
    since = vllm_platforms().attention.kv_cache_layout.checked_since
    if version is not None and _vkey(version) < _vkey(since):
        return [warning("vllm.kv_layout.not_modelled", f"VLLM_KV_CACHE_LAYOUT={requested}: vLLM {version}'s layout "
                        f"resolution is not modelled (vramcalc follows it from {since}), so whether start-up accepts "
                        "the layout is not checked", source=SOURCE)]
    res = resolve(spec, gpu, kv_dtype, requested, version, forced, kv_skip, extensible_connector, mm_inputs)
    if res is None:
        return [warning("vllm.kv_layout.not_modelled", f"VLLM_KV_CACHE_LAYOUT={requested}: on {gpu.name} vLLM's "
                        "attention backend selection (vllm/platforms/rocm.py) is not modelled, so whether start-up "
                        "accepts the layout is not checked; the KV figures do not depend on it", source=SOURCE)]
    picked = ", ".join(f"{k}: {v}" for k, v in res.backends.items())
    if any("FLASHINFER" in b for b in res.backends.values()) or any(k.endswith(" sinks") for k in res.backends):
        # the selection depends on the install: flashinfer-python (a CUDA requirement) and, for sinks, the TRT-LLM
        # cubins (vllm/utils/flashinfer.py has_nvidia_artifactory)
        picked += ("; vLLM's default CUDA install taken: flashinfer-python installed" +
                   (", FlashInfer's TRT-LLM cubins reachable" if any(k.endswith(" sinks") for k in res.backends)
                    else ""))
    if res.refusal is not None:
        return [error("vllm.kv_layout.refused", f"ValueError: {res.refusal} [{SOURCE}; attention backends on "
                      f"{gpu.name}: {picked}]", source=SOURCE,
                      fix=f"VLLM_KV_CACHE_LAYOUT={res.candidates[0]} or unset" if res.candidates else
                      "unset VLLM_KV_CACHE_LAYOUT")]
    return [note("vllm.kv_layout.resolved", f"VLLM_KV_CACHE_LAYOUT={requested}: vLLM uses the {res.layout} KV cache "
                 f"layout (attention backends on {gpu.name}: {picked}; the layouts they accept: "
                 f"{', '.join(res.candidates)}); the KV cache holds the same tokens as under the default layout",
                 source=SOURCE)]
