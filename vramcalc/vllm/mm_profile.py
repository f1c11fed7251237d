"""The multimodal encoder's profiling peak: what vLLM's start-up profile run holds on one rank while it encodes the
dummy batch, and the KV cache that costs beside the language model's own profile peak.

vLLM v0.34.0 vllm/v1/worker/gpu/model_runner.py GPUModelRunner.profile_run: on the first PP rank a MultiModalBudget
(vllm/multimodal/encoder_budget.py) picks the modality with the most tokens per item (get_modality_with_max_tokens:
ties go to the later name), repeats its dummy item mm_max_items_per_batch times (_get_max_items:
max(1, min(encoder budget // tokens per item, max_num_seqs x max(1, min(limit, max_model_len // tokens per item))))
with the encoder budget min(max(max_num_encoder_input_tokens, tokens), max(encoder_cache_size, tokens)),
vllm/v1/core/encoder_cache_manager.py compute_mm_encoder_budget) and encodes it
(vllm/v1/worker/gpu/mm/encoder_runner.py EncoderRunner.profile_encoder_cache); the outputs stay in the encoder cache
through the language model's dummy run and the sampler. The KV budget loses the allocator's peak over the whole run
(vllm/utils/mem_utils.py memory_profiling: allocated_bytes.all.peak), so the encoder costs
max(forward peak, held outputs + LM peak) - LM peak.

The forward peak is the live set of the tower's largest phase, read from vLLM v0.34.0's code as the CUDA build runs
it under the default config (VLLM_COMPILE with Inductor: custom ops off, so the RMSNorms run their native IR
implementation, vllm/platforms/cuda.py get_default_ir_op_priority; the TP all-reduce out of place), the vision
attention run by the backend --mm-encoder-attn-backend names or the platform picks (vramcalc/vllm/vit_attn.py):
FLASH_ATTN varlen (vllm/v1/attention/ops/vit_attn_wrappers.py flash_attn_maxseqlen_wrapper: its output, and float32
softmax statistics live only inside the kernel call) and TRITON_ATTN (triton_attn_wrapper: its output, and the int32
sequence lengths inside the call; context_attention_fwd allocates nothing) peak at proj as below; TORCH_SDPA
(torch_sdpa_wrapper: per sequence of cu_seqlens an SDPA output, kept until torch.cat joins them; torch's CUDA SDPA
takes FlashAttention on SM 8.0+ and memory-efficient attention below for these inputs, neither materializing the
attention matrix) also peaks at the torch.cat, holding the sequences' outputs and the joined one where proj's
output is not yet made. FLASHINFER (cuDNN through flashinfer, a 128 MiB workspace allocated at the model's build,
mm_encoder_attention.py _get_flashinfer_workspace_buffer, and cuDNN's own allocations) is not sized. Each allocation is rounded as c10/cuda/CUDACachingAllocator.cpp counts
allocated_bytes (a multiple of 512; a request of max_split_size, 20 MiB during the profile run
(vllm/v1/worker/gpu_worker.py _scoped_allocator_max_split), or more takes its whole segment, a multiple of 2 MiB).
tools/vllm_mm_encoder_peak_oracle.py runs vLLM's own towers on the meta device under a live-bytes tracker and
tests/test_vllm_mm_encoder_peak.py checks these formulas against it.

N patches, width D, D_r = D / tp (heads split), I_r = intermediate / tp, head dim d, b the tower's dtype bytes:

qwen2_5_vl_vision (models/qwen2_5_vl.py Qwen2_5_VisionTransformer.forward, Qwen2_5_VisionBlock, VisionAttention,
VisionMLP): held through the forward are the processor's float32 pixel values (N x patch_dim x 4, in the caller's
batch), the rotary cos and sin gathered for the batch and the per-grid copies the model's LRU cache keeps
(get_rope_by_thw), the window order and its inverse (N / merge^2 int64 each) and the cumulative window and frame
lengths (int32). Attention (at the proj output): the block input, norm1's output, qkv (3 D_r), q and k made
contiguous (2 D_r), their rotated copy (2 D_r, vllm_flash_attn apply_rotary: empty_like), the attention output
(D_r) and proj's (D). MLP (at down_proj's output): the block input, the attention output, the fused add-norm's two
outputs, gate_up (2 I_r), the activation (I_r, one fused output) and down_proj's (D). Under TP each phase also holds
its row-parallel output's all-reduced copy (D).

qwen3_5_vision (models/qwen3_vl.py Qwen3_VisionTransformer.forward, Qwen3_VisionBlock, Qwen3_VisionMLP): held through
the forward are the pixel values, the interpolated position embeddings (D) and the rotary cos and sin. Attention:
as above less the windows (block input, norm1, qkv, q/k contiguous, rotated, attention output, proj). MLP: the block
input, the residual sum, norm2's output and either fc1 with the activation (2 I_r, at the GELU) or the activation
with fc2's output (I_r + D, at fc2, plus the all-reduced copy under TP).

After the forward the merger's output (N / merge^2 x out_hidden_size) is held in the encoder cache, and for
qwen2_5_vl the LRU cache's rotary copies too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec import VisionSpec

MIB = 2**20
MAX_SPLIT = 20 * MIB  # vllm/v1/worker/gpu_worker.py _scoped_allocator_max_split(max_split_size_mb=20)
KINDS = ("qwen2_5_vl_vision", "qwen3_5_vision")


def cuda_allocated(nbytes: int) -> int:
    """allocated_bytes the CUDA caching allocator counts for one request during vLLM's profile run."""
    r = max(512, -(-nbytes // 512) * 512)
    return -(-r // (2 * MIB)) * (2 * MIB) if r >= MAX_SPLIT else r


@dataclass(frozen=True)
class EncoderPeak:
    forward_peak: int  # the live bytes at the forward's peak, on one rank
    held: int  # what stays allocated after it through the LM's dummy run (encoder cache, rotary cache)
    phase: str  # "attention" or "mlp"
    sdpa_join: int | None = None  # TORCH_SDPA: the live bytes at its torch.cat (within the forward peak)


def supported(v: VisionSpec | None) -> bool:
    return v is not None and v.kind in KINDS and None not in (v.num_heads, v.patch_dim, v.spatial_merge,
                                                              v.intermediate_size, v.merger_out)


def _blocks(units: int, ws: int) -> list[int]:
    """The window rows (or columns) of a side of `units` merged patches: whole windows of ws, then the remainder
    (qwen2_5_vl.py Qwen2_5_VisionTransformer.get_window_index pads to whole windows and drops the padding)."""
    return [ws] * (units // ws) + ([units % ws] if units % ws else [])


def _sdpa_chunks(v: VisionSpec, grid: tuple[int, int, int], items: int, row_bytes: int) -> int:
    """TORCH_SDPA's per-sequence outputs, summed, at the layer that holds most of them: vLLM v0.34.0
    vllm/v1/attention/ops/vit_attn_wrappers.py torch_sdpa_wrapper splits q / k / v at cu_seqlens and keeps each
    sequence's SDPA output until torch.cat joins them. The sequences are the frames (cu_seqlens: h x w patches per
    temporal patch of each item) and, for qwen2_5_vl's windowed blocks, the windows (cu_window_seqlens)."""
    a = cuda_allocated
    t, h, w = grid
    frames = t * items * a(h * w * row_bytes)
    if v.kind != "qwen2_5_vl_vision":
        return frames
    m, ws = v.spatial_merge or 1, v.window_units or 1
    rows, cols = _blocks(h // m, ws), _blocks(w // m, ws)
    return max(frames, t * items * sum(a(r * c * m * m * row_bytes) for r in rows for c in cols))


SIZED_BACKENDS = ("FLASH_ATTN", "TRITON_ATTN", "TORCH_SDPA")  # the vision attention backends encoder_peak sizes


def encoder_peak(v: VisionSpec, tp: int, grid: tuple[int, int, int], items: int, dtype_bytes: int = 2,
                 backend: str = "FLASH_ATTN") -> EncoderPeak:
    """The forward peak and what is held after it for `items` dummy items of `grid` (t, h, w patches) on one rank,
    the tower's attention run by `backend` (--mm-encoder-attn-backend or the platform's pick; SIZED_BACKENDS)."""
    if backend not in SIZED_BACKENDS:
        raise ValueError(f"no encoder peak formula for the {backend} vision attention backend")
    if not supported(v):
        raise ValueError(f"no encoder peak formula for the {v.kind} tower")
    assert v.num_heads and v.patch_dim and v.spatial_merge and v.intermediate_size and v.merger_out
    a, b = cuda_allocated, dtype_bytes
    t, h, w = grid
    n = t * h * w * items
    m2 = v.spatial_merge**2
    d, heads = v.hidden_size, v.num_heads
    hd = d // heads
    d_r = (heads // tp) * hd
    i_r = v.intermediate_size // tp
    hidden = a(n * d * b)
    reduced = hidden if tp > 1 else 0  # the row-parallel output's all-reduced copy
    base = a(n * v.patch_dim * 4) + 2 * a(n * (hd // 2) * b) + a((t * items + 1) * 4)
    held = a(n // m2 * v.merger_out * b)
    attention = 3 * hidden + a(n * 3 * d_r * b) + 2 * a(n * 2 * d_r * b) + a(n * d_r * b) + reduced
    join = None
    if backend == "TORCH_SDPA":  # at torch.cat: the sequences' outputs and the joined one, before proj
        join = 2 * hidden + a(n * 3 * d_r * b) + 2 * a(n * 2 * d_r * b) + _sdpa_chunks(v, grid, items, d_r * b) \
            + a(n * d_r * b)
        attention = max(attention, join)
    if v.kind == "qwen2_5_vl_vision":
        ws = v.window_units or 1
        windows = t * math.ceil(h // v.spatial_merge / ws) * math.ceil(w // v.spatial_merge / ws) * items
        lru = 2 * a(t * h * w * (hd // 2) * b)  # one grid: every dummy item is the same
        base += lru + 2 * a(n // m2 * 8) + a((windows + 1) * 4)
        held += lru
        mlp = 5 * hidden + a(n * 2 * i_r * b) + a(n * i_r * b) + reduced
    else:
        base += hidden  # pos_embeds
        mlp = 3 * hidden + max(2 * a(n * i_r * b), a(n * i_r * b) + hidden + reduced)
    phase = "attention" if attention >= mlp else "mlp"
    return EncoderPeak(forward_peak=base + max(attention, mlp), held=held, phase=phase,
                       sdpa_join=None if join is None else base + join)


def kv_cost(peak: EncoderPeak, lm_transient: int) -> int:
    """The KV the encoder costs beside the language model's profile peak `lm_transient` (the profile run's peak is
    max(encoder forward peak, held + LM peak); module docstring)."""
    return max(peak.forward_peak, peak.held + lm_transient) - lm_transient


def max_items(tokens: int, mnbt: int, encoder_input_tokens: int | None, encoder_cache: int | None, limit: int,
              max_model_len: int, max_num_seqs: int, chunked_prefill: bool = True) -> int:
    """MultiModalBudget._get_max_items (vLLM v0.34.0 vllm/multimodal/encoder_budget.py) for one modality."""
    budget = min(max(encoder_input_tokens or mnbt, tokens), max(encoder_cache or mnbt, tokens))
    per_prompt = max(1, min(limit, max_model_len // tokens))
    reqs = max_num_seqs if chunked_prefill else min(max_num_seqs, mnbt // tokens)
    return max(1, min(budget // tokens, reqs * per_prompt))


@dataclass(frozen=True)
class Estimate:
    modality: str
    grid: tuple[int, int, int]
    items: int
    tokens: int  # per item
    peak: EncoderPeak
    backend: str  # the vision attention backend sized
    kv_cost: int  # the KV the encoder costs on a first-PP-stage rank beside the LM's profile peak


def estimate(v: VisionSpec | None, model_id: str, tp: int, limits: dict[str, int] | None, encoder_tp_mode: str | None,
             mnbt: int, max_num_seqs: int, max_model_len: int, chunked_prefill: bool, lm_transient: int,
             dtype_bytes: int, mm_kwargs: dict[str, object] | None = None, backend: str = "FLASH_ATTN"
             ) -> Estimate | None:
    """The encoder's profiling cost for a model whose tower and dummy items vramcalc knows, else None (the warning
    then says it is not sized). --mm-encoder-tp-mode data (the items split over the ranks,
    vllm/multimodal/utils.py run_dp_sharded_vision_model) is not sized."""
    from .features import features

    cfg = features().multimodal.encoder_peak
    dummy = cfg.dummy_items.get(model_id)
    if v is None or not supported(v) or dummy is None or (encoder_tp_mode == "data" and tp > 1) or (
            backend not in SIZED_BACKENDS):
        return None
    lim = limits or {}
    candidates: dict[str, tuple[tuple[int, int, int], int]] = {}
    d: Dummy | None = None
    if mm_kwargs is not None:  # --mm-processor-kwargs: the dummies vLLM builds under them
        d = dummy_under_kwargs(model_id, mm_kwargs, max_model_len, lim.get("video", cfg.default_limit) > 0)
        if d is None:
            return None
        if lim.get("image", cfg.default_limit) > 0:
            candidates["image"] = d.image
        if d.video is not None:
            candidates["video"] = d.video
    else:
        if lim.get("image", cfg.default_limit) > 0:
            candidates["image"] = (dummy.image.grid, dummy.image.tokens)
        if lim.get("video", cfg.default_limit) > 0 and dummy.video is not None:
            # qwen2_vl.py get_num_frames_with_most_features: two frames a temporal patch
            t = max(1, min(dummy.video.max_temporal_patches, max_model_len // dummy.video.tokens_per_temporal_patch))
            candidates["video"] = ((t, *dummy.video.frame_grid), t * dummy.video.tokens_per_temporal_patch)
        elif "image" not in candidates:
            return None
    if not candidates:
        return None
    modality = max(candidates, key=lambda m: (candidates[m][1], m))  # get_modality_with_max_tokens
    grid, tokens = candidates[modality]
    if modality == "video" and d is not None and d.not_sized:
        return None  # the video dummy spread over more frames (Dummy.not_sized): its encoded grid is not sized
    n = max_items(tokens, mnbt, None, None, lim.get(modality, cfg.default_limit), max_model_len, max_num_seqs,
                  chunked_prefill)
    peak = encoder_peak(v, tp, grid, n, dtype_bytes, backend)
    return Estimate(modality=modality, grid=grid, items=n, tokens=tokens, peak=peak, backend=backend,
                    kv_cost=kv_cost(peak, lm_transient))


# --mm-processor-kwargs: the dummy items under the processor's kwargs (data/vllm_features.json
# multimodal.encoder_peak.processors; tests/test_vllm_mm_processor_kwargs.py against vLLM 0.34.0's own budget)

SCOPES = ("text_kwargs", "images_kwargs", "videos_kwargs", "audio_kwargs")  # context.py _HF_PROCESSOR_KWARG_SCOPES


class ProcessorKwargsError(ValueError):
    """What vLLM raises at start-up for the value (its words)."""


@dataclass(frozen=True)
class Dummy:
    image: tuple[tuple[int, int, int], int]  # grid (t, h, w) patches, tokens
    video: tuple[tuple[int, int, int], int] | None  # at max_model_len; None where videos are not profiled
    image_px: tuple[int, int]  # the dummy image's (width, height)
    video_px: tuple[int, int, int] | None  # the dummy video's (frames, height, width) as vLLM builds it
    ignored: tuple[str, ...]  # keys that do not move the dummy
    not_sized: tuple[str, ...]  # keys that move it in a way not sized here


def _merge_scoped(flat: object, scoped: object) -> object:
    """context.py _merge_scoped_mm_processor_value: mappings merge, the scoped leaf wins."""
    if isinstance(flat, dict) and isinstance(scoped, dict):
        out = dict(flat)
        for k, v in scoped.items():
            out[k] = _merge_scoped(out[k], v) if k in out else v
        return out
    return scoped


def resolve_kwargs(kw: dict[str, object], routed: dict[str, list[str]]) -> dict[str, object]:
    """vLLM v0.34.0 vllm/multimodal/processing/context.py _resolve_mm_processor_kwargs for the configured kwargs
    (vllm/config/multimodal.py merge_mm_processor_kwargs against no request kwargs: a flat key the scope already
    has yields to the scope's value, as the routing below does)."""
    out = dict(kw)
    for s in ("images_kwargs", "videos_kwargs"):
        if s in kw and not isinstance(kw[s], dict):
            raise ProcessorKwargsError(f"TypeError: `{s}` must be a mapping")
    for key in [k for k in kw if k not in SCOPES]:
        scopes = [s for s in SCOPES if key in routed.get(s, ())]
        if not scopes:
            continue
        for s in scopes:
            cur = out.get(s, {})
            if not isinstance(cur, dict):
                raise ProcessorKwargsError(f"TypeError: `{s}` must be a mapping")
            cur = dict(cur)
            cur[key] = _merge_scoped(kw[key], cur[key]) if key in cur else (
                dict(kw[key]) if isinstance(kw[key], dict) else kw[key])  # type: ignore[call-overload]
            out[s] = cur
        out.pop(key)
    return out


def _vision_size(scope: dict[str, object], default: dict[str, int]) -> dict[str, int]:
    """qwen2_vl.py Qwen2VLProcessingInfo._get_vision_size: the default, the scope's size, then min / max_pixels."""
    size = dict(default)
    over = scope.get("size")
    if isinstance(over, dict):
        size.update(over)
    for key, edge in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
        if scope.get(key) is not None:
            size[edge] = scope[key]  # type: ignore[assignment]
    return size


def _most_features(max_pixels: int, unit: int) -> tuple[int, int]:
    """qwen2_vl.py get_image_size_with_most_features: (width, height); no factor pair at all gives width 0."""
    n = max_pixels // (unit * unit)
    hf, wf = 1, n
    for seq in range(n, 0, -1):
        hf, wf = next(((d, seq // d) for d in range(math.isqrt(seq), 0, -1) if seq % d == 0), (1, seq))
        if wf / hf <= 200:
            break
    return unit * wf, unit * hf


def _smart_resize(h: int, w: int, factor: int, lo: int, hi: int, frames: int = 1, tf: int = 1,
                  video: bool = False) -> tuple[int, int]:
    """transformers 5.x models/qwen2_vl/image_processing_qwen2_vl.py smart_resize (video=False) and
    models/qwen3_vl/video_processing_qwen3_vl.py smart_resize (video=True: frames over the temporal factor)."""
    if video and (h < factor or w < factor):
        s = max(factor / h, factor / w)
        h, w = int(h * s), int(w * s)
    if min(h, w) == 0:
        raise ProcessorKwargsError("ZeroDivisionError: division by zero")
    if max(h, w) / min(h, w) > 200:
        raise ProcessorKwargsError(f"ValueError: absolute aspect ratio must be smaller than 200, got {max(h, w) / min(h, w)}")
    hb, wb = round(h / factor) * factor, round(w / factor) * factor
    t, n = (round(frames / tf) * tf, frames) if video else (1, 1)
    if t * hb * wb > hi:
        beta = math.sqrt(n * h * w / hi)
        hb, wb = max(factor, math.floor(h / beta / factor) * factor), max(factor, math.floor(w / beta / factor) * factor)
    elif t * hb * wb < lo:
        beta = math.sqrt(lo / (n * h * w))
        hb, wb = math.ceil(h * beta / factor) * factor, math.ceil(w * beta / factor) * factor
    return hb, wb


def dummy_under_kwargs(model_id: str, kw: dict[str, object], max_model_len: int, video: bool) -> Dummy | None:
    """The profiled dummy items of `model_id` under --mm-processor-kwargs `kw` (None: no processor data): vLLM v0.34.0
    qwen2_vl.py Qwen2VLProcessingInfo.get_max_image_tokens / get_max_video_tokens (frames from
    get_num_frames_with_most_features: the most under max_model_len, at most 14) and qwen3_vl.py
    Qwen3VLProcessingInfo.get_max_video_tokens (two frames at the video's longest_edge over temporal_patch_size)."""
    from .features import features

    cfg = features().multimodal.encoder_peak.processors
    p = cfg.models.get(model_id) if cfg is not None else None
    if cfg is None or p is None:
        return None
    r = resolve_kwargs(kw, cfg.routed)
    img = r.get("images_kwargs", {})
    vid = r.get("videos_kwargs", {})
    img = img if isinstance(img, dict) else {}
    vid = vid if isinstance(vid, dict) else {}
    unit, ps, m2 = p.patch_size * p.merge_size, p.patch_size, p.merge_size**2
    default = dict(p.image_size)
    for key, edge in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
        if p.class_size and key in kw and kw[key] is None:  # the processor built with it (data: class_size)
            default[edge] = p.class_size[edge]
    isize = _vision_size(img, default)
    w, h = _most_features(int(isize["longest_edge"]), unit)
    if w == 0:
        raise ProcessorKwargsError("ZeroDivisionError: division by zero")
    rh, rw = _smart_resize(h, w, unit, int(isize["shortest_edge"]), int(isize["longest_edge"]))
    image = ((1, rh // ps, rw // ps), rh // ps * (rw // ps) // m2)
    vitem, vpx = None, None
    if video:
        if p.family == "qwen2_vl":
            vs = _vision_size(vid, default)
            vh, vw = _smart_resize(h, w, unit, int(vs["shortest_edge"]), int(vs["longest_edge"]))
            per = vh // ps * (vw // ps) // m2
            frames = max(1, min(2 * (max_model_len // per) or 1, p.max_frames_per_video))
            t = -(-frames // p.temporal_patch_size)
            vitem, vpx = ((t, vh // ps, vw // ps), t * per), (frames, h, w)
        else:
            vs = _vision_size(vid, p.video_size or p.image_size)
            tps = int(vid.get("temporal_patch_size") or p.temporal_patch_size)  # type: ignore[call-overload]
            tw, th = _most_features(int(vs["longest_edge"]) // tps, unit)
            if tw == 0:
                raise ProcessorKwargsError("ZeroDivisionError: division by zero")
            vh, vw = _smart_resize(th, tw, unit, int(vs["shortest_edge"]), int(vs["longest_edge"]),
                                   frames=2, tf=p.temporal_patch_size, video=True)
            vitem, vpx = ((1, vh // ps, vw // ps), vh // ps * (vw // ps) // m2), (2, vh, vw)
    keys: list[tuple[str, str | None]] = [(k, None) for k in kw if k not in SCOPES]
    for sc in ("images_kwargs", "videos_kwargs"):
        sub = kw.get(sc)
        keys += [(k, sc) for k in sub] if isinstance(sub, dict) else []
    sizing = set(cfg.sizing_keys.get("images_kwargs", [])) | set(cfg.sizing_keys.get("videos_kwargs", []))
    ignored, not_sized = [], []
    for k, s in keys:
        name = f"{s}.{k}" if s else k
        if k in cfg.not_sized_keys and p.family == "qwen3_vl" and s != "images_kwargs":
            not_sized.append(name)
        elif s is None and k not in sizing or s is not None and k not in cfg.sizing_keys.get(s, []) or \
                k == "temporal_patch_size" and (s == "images_kwargs" or p.family == "qwen2_vl"):
            ignored.append(name)
    return Dummy(image=image, video=vitem, image_px=(w, h), video_px=vpx, ignored=tuple(ignored), not_sized=tuple(not_sized))


def parse_processor_kwargs(v: str) -> dict[str, object] | None:
    """--mm-processor-kwargs as vLLM v0.34.0 reads it: vllm/engine/arg_utils.py parse_type(json.loads) ("" and "None"
    are None there too, optional_type), then ModelConfig's dict[str, object] | None (pydantic's words)."""
    import json

    if v in ("", "None"):
        return None
    try:
        d = json.loads(v)
    except ValueError:
        raise ValueError(f"Value {v} cannot be converted to <function loads>.") from None
    if d is not None and not isinstance(d, dict):
        raise ValueError("1 validation error for ModelConfig mm_processor_kwargs: Input should be a valid dictionary "
                         f"[type=dict_type, input_value={d!r}, input_type={type(d).__name__}]")
    return d


def max_item_tokens(model_id: str, kw: dict[str, object] | None, limits: dict[str, int] | None,
                    max_model_len: int) -> int | None:
    """The largest item's tokens over the modalities allowed (MultiModalBudget's mm_max_toks_per_item, vLLM v0.34.0
    vllm/multimodal/encoder_budget.py), under the processor kwargs or its defaults; None without processor data."""
    from .features import features

    lim = limits or {}
    default = features().multimodal.encoder_peak.default_limit
    d = dummy_under_kwargs(model_id, kw or {}, max_model_len, lim.get("video", default) > 0)
    if d is None:
        return None
    tokens = ([d.image[1]] if lim.get("image", default) > 0 else []) + ([d.video[1]] if d.video else [])
    return max(tokens) if tokens else None
