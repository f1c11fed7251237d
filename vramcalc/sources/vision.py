"""Vision-tower parameter counts from a composite config's vision_config.

Each formula follows the transformers modeling class named beside it (5.23); absent fields take
the class defaults in data/architectures.json ("vision"). The count includes the projector that
maps the tower's output into the language model.
"""

from __future__ import annotations

from typing import Any

from ..data_files import load
from ..data_models import Architectures, VisionArch
from ..errors import ConfigError
from .validate import MAX_CONTEXT, int_value
from ..spec import VisionSpec


def _vision_defaults() -> dict[str, VisionArch]:
    return load("architectures.json", Architectures).vision


COMPOSITE_TOWERS = ("gemma3", "gemma4", "llama4", "qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe", "kimi_k25",
                    "qwen2_5_vl", "qwen2_vl", "minimax_m3_vl")
# Composites whose Hub config.json is flat: the text model's fields at the top level, the tower under vision_config
# (transformers Qwen2_5_VLConfig / Qwen2VLConfig build their text_config from those top-level fields)
FLAT_COMPOSITES = ("qwen2_5_vl", "qwen2_vl")


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


# vision_config fields that are not sizes; every other field read is a positive integer.
_NOT_SIZES = {"vision_use_head", "deepstack_visual_indexes", "pixel_shuffle_ratio", "merge_kernel_size"}


def _get(v: dict[str, Any], defaults: dict[str, Any], key: str, where: str) -> Any:
    if key in v and v[key] is not None:
        value = v[key]
    elif key in defaults:
        value = defaults[key]
    else:
        raise ConfigError(where, f"vision_config.{key}")
    if key == "pixel_shuffle_ratio":  # Llama 4: 0.5; the adapter's input is hidden / ratio^2
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 1:
            raise ConfigError(where, f"vision_config.{key}", f"must be a number in 0.01..1, got {value!r:.40}")
        return value
    if key in _NOT_SIZES:
        return value
    # a tower's widths, layers, patch and image sizes: validate.MAX_CONTEXT bounds them all
    return int_value(value, where, f"vision_config.{key}", 1, MAX_CONTEXT)


def read_vision(cfg: dict[str, Any], text_hidden: int, where: str) -> VisionSpec | None:
    v = cfg.get("vision_config")
    outer = cfg.get("model_type")
    if v is None:
        if outer not in COMPOSITE_TOWERS:
            return None
        v = {}  # a composite always builds its tower: from class defaults when the config has none
    if not isinstance(v, dict):
        raise ConfigError(where, "vision_config", "must be a JSON object")
    vt = v.get("model_type")
    if outer == "minimax_m3_vl":  # MiniMaxM3VLConfig builds its vision_config as MiniMaxM3VLVisionConfig, whatever
        return _minimax_m3_vl(v, cfg, text_hidden, where)  # model_type the dict names (an MLX copy: clip_vision_model)
    if outer == "gemma3" or vt == "siglip_vision_model":
        return _siglip_gemma3(v, text_hidden, where)
    if outer == "gemma4" or vt == "gemma4_vision":
        return _gemma4(v, text_hidden, where)
    if outer == "llama4" or vt == "llama4_vision_model":
        return _llama4(v, text_hidden, where)
    if outer in ("qwen3_5", "qwen3_5_moe") or vt in ("qwen3_5", "qwen3_5_moe", "qwen3_5_vision"):
        return _qwen3_5(v, where)
    if outer in ("qwen3_vl", "qwen3_vl_moe") or vt in ("qwen3_vl", "qwen3_vl_moe"):
        return _qwen3_5(v, where, deepstack=True)
    if outer == "qwen2_5_vl" or vt in ("qwen2_5_vl", "qwen2_5_vl_vision"):
        return _qwen2_5_vl(v, where)
    if outer == "qwen2_vl" or vt in ("qwen2_vl", "qwen2_vl_vision"):
        return _qwen2_vl(v, where)
    if outer == "kimi_k25" or vt == "kimi_k25_vision":
        # Kimi_K25Config builds its vision_config as Kimi_K25VisionConfig whatever the dict says:
        # the Hub's Kimi-K2.5 tower carries no model_type at all
        return _kimi_k25(v, cfg, text_hidden, where)
    raise ConfigError(where, "vision_config.model_type", f"is {vt!r}, a tower vramcalc does not count yet")


def _minimax_m3_vl(v: dict[str, Any], cfg: dict[str, Any], text_hidden: int, where: str) -> VisionSpec:
    """MiniMaxVLVisionModel as vLLM v0.34.0 builds it (vllm/models/minimax_m3/common/vision_tower.py): a bias-free
    Conv3d patch embedding (channels x temporal_patch_size x patch^2 -> hidden) kept in float32
    (MiniMaxVLPatchEmbed), a pre-LayerNorm, CLIP-style blocks (two LayerNorms with biases, a biased fused qkv and
    out_proj, a biased fc1 / fc2 MLP) and no post-LayerNorm (require_post_norm=False); then
    MiniMaxVLMultiModalProjector (hidden -> projector_hidden_size -> text hidden, biased) and MiniMaxVLPatchMerger
    (text hidden x spatial_merge_size^2 -> projector_hidden_size -> text hidden, biased). Defaults: transformers
    5.24 MiniMaxM3VLVisionConfig (data/architectures.json vision minimax_m3_vl); projector_hidden_size from the
    outer config (MiniMaxM3VLConfig default 6144)."""
    d = _vision_defaults()["minimax_m3_vl"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, heads = g("hidden_size"), g("intermediate_size"), g("num_hidden_layers"), g("num_attention_heads")
    ch, tps, p, m = g("num_channels"), g("temporal_patch_size"), g("patch_size"), g("spatial_merge_size")
    if h % heads:
        raise ConfigError(where, "vision_config.num_attention_heads", f"must divide hidden_size {h}, got {heads}")
    mid = cfg.get("projector_hidden_size", 6144)
    mid = int_value(mid, where, "projector_hidden_size", 1, MAX_CONTEXT) if mid else text_hidden
    embed = ch * tps * p * p * h
    layer = 2 * 2 * h + _linear(h, 3 * h) + _linear(h, h) + _linear(h, inter) + _linear(inter, h)
    projector = _linear(h, mid) + _linear(mid, text_hidden)
    merged = text_hidden * m * m
    merger = _linear(merged, mid) + _linear(mid, text_hidden)
    # kept whole under TP: the patch embedding, the pre-LayerNorm, each block's LayerNorms and the biases of its
    # RowParallelLinear out_proj and fc2, and the biases of the projector's and the merger's RowParallelLinear
    # linear_2 (checked against vLLM's build at TP 1, 2, 4 and 8: tests/data/vllm_minimax_m3_oracle_v0.34.0.json)
    replicated = embed + 2 * h + n * (2 * 2 * h + 2 * h) + 2 * text_hidden
    return VisionSpec(kind="minimax_m3_vl_vision", params=embed + 2 * h + n * layer + projector + merger,
                      hidden_size=h, num_layers=n, replicated_params=replicated, fp32_params=embed,
                      intermediate_size=inter)


def _siglip_gemma3(v: dict[str, Any], text_hidden: int, where: str) -> VisionSpec:
    """SiglipVisionModel (no head) + Gemma3MultiModalProjector."""
    d = _vision_defaults()["siglip_vision_model"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, p, img, ch = (g("hidden_size"), g("intermediate_size"), g("num_hidden_layers"),
                               g("patch_size"), g("image_size"), g("num_channels"))
    if g("vision_use_head"):
        raise ConfigError(where, "vision_config.vision_use_head", "is true; the SigLIP head is not counted yet")
    embed = ch * p * p * h + h + (img // p) ** 2 * h
    layer = 4 * _linear(h, h) + _linear(h, inter) + _linear(inter, h) + 2 * 2 * h
    tower = embed + n * layer + 2 * h
    projector = h * text_hidden + h  # mm_input_projection_weight + mm_soft_emb_norm
    return VisionSpec(kind="siglip_vision_model", params=tower + projector, hidden_size=h, num_layers=n)


def _gemma4(v: dict[str, Any], text_hidden: int, where: str) -> VisionSpec:
    """Gemma4VisionModel (patch embedder, gated-MLP encoder with q/k norms, no biases) +
    embed_vision projection."""
    d = _vision_defaults()["gemma4_vision"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, p = g("hidden_size"), g("intermediate_size"), g("num_hidden_layers"), g("patch_size")
    heads, kv, hd = g("num_attention_heads"), g("num_key_value_heads"), g("head_dim")
    embed = 2 * g("position_embedding_size") * h + 3 * p * p * h
    layer = h * heads * hd * 2 + 2 * h * kv * hd + 2 * hd + 3 * h * inter + 4 * h
    projector = h * text_hidden
    return VisionSpec(kind="gemma4_vision", params=embed + n * layer + projector, hidden_size=h, num_layers=n)


def _llama4(v: dict[str, Any], text_hidden: int, where: str) -> VisionSpec:
    """Llama4VisionModel (class token, unfold patch embedding, biased encoder, pixel-shuffle
    adapter) + Llama4MultiModalProjector (no bias)."""
    d = _vision_defaults()["llama4_vision_model"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, p, img, ch = (g("hidden_size"), g("intermediate_size"), g("num_hidden_layers"),
                               g("patch_size"), g("image_size"), g("num_channels"))
    ratio = g("pixel_shuffle_ratio")
    embed = h + ((img // p) ** 2 + 1) * h + ch * p * p * h + 2 * 2 * h
    layer = 4 * _linear(h, h) + _linear(h, inter) + _linear(inter, h) + 2 * 2 * h
    adapter_in = int(h / (ratio * ratio))
    adapter = adapter_in * g("projector_input_dim") + g("projector_input_dim") * g("projector_output_dim")
    projector = g("vision_output_dim") * text_hidden
    return VisionSpec(kind="llama4_vision_model", params=embed + n * layer + adapter + projector,
                      hidden_size=h, num_layers=n)


def _qwen3_5(v: dict[str, Any], where: str, deepstack: bool = False) -> VisionSpec:
    """Qwen3_5VisionModel: 3D patch embed, learned position table, biased blocks, patch merger.
    Qwen3VLVisionModel (deepstack) is the same tower plus one merger per deepstack_visual_indexes
    entry, each normed after the patch shuffle (Qwen3VLVisionPatchMerger use_postshuffle_norm)."""
    d = _vision_defaults()["qwen3_vl" if deepstack else "qwen3_5"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n = g("hidden_size"), g("intermediate_size"), g("depth")
    ch, tp, p, m = g("in_channels"), g("temporal_patch_size"), g("patch_size"), g("spatial_merge_size")
    stacks = v.get("deepstack_visual_indexes", d.get("deepstack_visual_indexes")) if deepstack else None
    if not deepstack and (g("deepstack_visual_indexes") if "deepstack_visual_indexes" in v else False):
        raise ConfigError(where, "vision_config.deepstack_visual_indexes", "is not empty; deepstack mergers are not counted yet")
    embed = ch * tp * p * p * h + h + g("num_position_embeddings") * h
    layer = 2 * 2 * h + _linear(h, 3 * h) + _linear(h, h) + _linear(h, inter) + _linear(inter, h)
    merged = h * m * m
    merger = 2 * h + _linear(merged, merged) + _linear(merged, g("out_hidden_size"))
    if stacks:
        if not isinstance(stacks, list):
            raise ConfigError(where, "vision_config.deepstack_visual_indexes", "must be a list of layer indexes")
        merger += len(stacks) * (2 * merged + _linear(merged, merged) + _linear(merged, g("out_hidden_size")))
    # kept whole under TP (vLLM v0.34.0 models/qwen3_vl.py Qwen3_VisionTransformer, Qwen3_VisionBlock,
    # Qwen3_VisionPatchMerger): the Conv3d patch embedding and the position table, each block's two LayerNorms and
    # the biases of its RowParallelLinear proj and fc2, each merger's norm and linear_fc2 bias
    replicated = embed + n * (2 * 2 * h + 2 * h) + 2 * h + g("out_hidden_size") \
        + len(stacks or []) * (2 * merged + g("out_hidden_size"))
    return VisionSpec(kind="qwen3_vl_vision" if deepstack else "qwen3_5_vision", params=embed + n * layer + merger,
                      hidden_size=h, num_layers=n, replicated_params=replicated, intermediate_size=inter,
                      merger_in=merged, merger_out=g("out_hidden_size"), mergers=1 + len(stacks or []),
                      num_heads=g("num_heads"), patch_dim=ch * tp * p * p, spatial_merge=m)


def _qwen2_5_vl(v: dict[str, Any], where: str) -> VisionSpec:
    """Qwen2_5_VisionTransformerPretrainedModel (transformers 5.24 models/qwen2_5_vl/modeling_qwen2_5_vl.py):
    a bias-free Conv3d patch embedding, no position table (2D rotary: a buffer), blocks of two RMSNorms, a biased
    qkv and proj and a biased gated MLP (gate, up, down over intermediate_size), and the patch merger (an RMSNorm
    over hidden, then two biased linears over hidden x spatial_merge_size^2). window_size and
    fullatt_block_indexes choose which blocks attend in windows: no parameter of their own. The Conv3d reads
    in_channels (the Hub files' in_chans is not a field of Qwen2_5_VLVisionConfig; both give 3)."""
    d = _vision_defaults()["qwen2_5_vl"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, out = g("hidden_size"), g("intermediate_size"), g("depth"), g("out_hidden_size")
    ch, tp, p, m = g("in_channels"), g("temporal_patch_size"), g("patch_size"), g("spatial_merge_size")
    if h % g("num_heads"):
        raise ConfigError(where, "vision_config.num_heads", f"must divide hidden_size {h}, got {g('num_heads')}")
    embed = ch * tp * p * p * h
    layer = 2 * h + _linear(h, 3 * h) + _linear(h, h) + 2 * _linear(h, inter) + _linear(inter, h)
    merged = h * m * m
    merger = h + _linear(merged, merged) + _linear(merged, out)
    # kept whole under TP (vLLM v0.34.0 models/qwen2_5_vl.py Qwen2_5_VisionTransformer): the Conv3dLayer patch
    # embedding, each block's two RMSNorms and the biases of its RowParallelLinear attn.proj and mlp.down_proj, the
    # merger's ln_q and the bias of its RowParallelLinear mlp.2
    replicated = embed + n * (2 * h + 2 * h) + h + out
    window = v.get("window_size", d.get("window_size"))  # the windowed blocks' side in pixels (mm_profile only)
    return VisionSpec(kind="qwen2_5_vl_vision", params=embed + n * layer + merger, hidden_size=h, num_layers=n,
                      replicated_params=replicated, intermediate_size=inter, merger_in=merged, merger_out=out,
                      mergers=1, num_heads=g("num_heads"), patch_dim=ch * tp * p * p, spatial_merge=m,
                      window_units=max(1, window // m // p) if isinstance(window, int) and window > 0 else None)


def _qwen2_vl(v: dict[str, Any], where: str) -> VisionSpec:
    """Qwen2VisionTransformerPretrainedModel (transformers 5.24 models/qwen2_vl/modeling_qwen2_vl.py): the tower is
    embed_dim wide (hidden_size is the merger's output, the language model's width), a bias-free Conv3d patch
    embedding, blocks of two LayerNorms (weight and bias), a biased qkv and proj and a biased fc1 / fc2 MLP over
    int(embed_dim x mlp_ratio), and the patch merger (a LayerNorm over embed_dim, then two biased linears over
    embed_dim x spatial_merge_size^2)."""
    d = _vision_defaults()["qwen2_vl"].defaults
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    e, n, out = g("embed_dim"), g("depth"), g("hidden_size")
    ratio = v.get("mlp_ratio", d.get("mlp_ratio"))
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 64:
        raise ConfigError(where, "vision_config.mlp_ratio", f"must be a number in (0, 64], got {ratio!r:.40}")
    inter = int(e * ratio)  # Qwen2VLVisionBlock: mlp_hidden_dim = int(embed_dim * mlp_ratio)
    ch, tp, p, m = g("in_channels"), g("temporal_patch_size"), g("patch_size"), g("spatial_merge_size")
    if e % g("num_heads"):
        raise ConfigError(where, "vision_config.num_heads", f"must divide embed_dim {e}, got {g('num_heads')}")
    embed = ch * tp * p * p * e
    layer = 2 * 2 * e + _linear(e, 3 * e) + _linear(e, e) + _linear(e, inter) + _linear(inter, e)
    merged = e * m * m
    merger = 2 * e + _linear(merged, merged) + _linear(merged, out)
    # kept whole under TP (vLLM v0.34.0 models/qwen2_vl.py Qwen2VisionTransformer): the Conv3dLayer patch
    # embedding, each block's two LayerNorms and the biases of its RowParallelLinear attn.proj and mlp.fc2, the
    # merger's ln_q and the bias of its RowParallelLinear mlp.2
    replicated = embed + n * (2 * 2 * e + 2 * e) + 2 * e + out
    return VisionSpec(kind="qwen2_vl_vision", params=embed + n * layer + merger, hidden_size=e, num_layers=n,
                      replicated_params=replicated, intermediate_size=inter, merger_in=merged, merger_out=out,
                      mergers=1)


# Kimi-K2.5's Hub config keeps the names of Moonshot's remote code (vt_hidden_size, init_pos_emb_height, ...);
# transformers' Kimi_K25VisionConfig names the same sizes without the prefix. vLLM v0.33.0 reads the legacy
# name first where it differs (model_executor/models/kimi_k25_vit.py _get_pos_emb_size; its KimiK3VisionConfig
# maps vt_* the same way, transformers_utils/configs/kimi_k3.py), so a legacy key, when present, sizes the tower.
_KIMI_LEGACY = {
    "hidden_size": "vt_hidden_size",
    "intermediate_size": "vt_intermediate_size",
    "num_hidden_layers": "vt_num_hidden_layers",
    "num_attention_heads": "vt_num_attention_heads",
    "pos_emb_height": "init_pos_emb_height",
    "pos_emb_width": "init_pos_emb_width",
}


def _kimi_k25(v: dict[str, Any], cfg: dict[str, Any], text_hidden: int, where: str) -> VisionSpec:
    """Kimi_K25VisionModel (Conv2d patch embed, learned 2D position table, biased pre-norm encoder,
    final LayerNorm) + Kimi_K25MultimodalProjection (pre_norm, in_proj and out_proj over the merged
    patches), transformers 5.24 models/kimi_k25/modeling_kimi_k25.py."""
    d = _vision_defaults()["kimi_k25_vision"].defaults
    v = {**{k: v[old] for k, old in _KIMI_LEGACY.items() if k not in v and old in v}, **v}
    g = lambda k: _get(v, d, k, where)  # noqa: E731
    h, inter, n, p = g("hidden_size"), g("intermediate_size"), g("num_hidden_layers"), g("patch_size")
    g("num_attention_heads")  # validated: heads split h (no parameter of its own)
    merge = g("merge_kernel_size")
    if not (isinstance(merge, list) and len(merge) == 2
            and all(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 64 for m in merge)):
        raise ConfigError(where, "vision_config.merge_kernel_size", f"must be two integers in 1..64, got {merge!r:.40}")
    embed = 3 * p * p * h + h + g("pos_emb_height") * g("pos_emb_width") * h  # time table: a buffer
    layer = 2 * 2 * h + 4 * _linear(h, h) + _linear(h, inter) + _linear(inter, h)
    tower = embed + n * layer + 2 * h
    # pre_norm spans Kimi_K25Config.projection_hidden_size (the Hub file: vision_config.mm_hidden_size)
    norm = cfg.get("projection_hidden_size") or v.get("mm_hidden_size") or h
    norm = int_value(norm, where, "projection_hidden_size", 1, MAX_CONTEXT)
    merged = h * merge[0] * merge[1]
    projector = 2 * norm + _linear(merged, merged) + _linear(merged, text_hidden)
    return VisionSpec(kind="kimi_k25_vision", params=tower + projector, hidden_size=h, num_layers=n)
