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


COMPOSITE_TOWERS = ("gemma3", "gemma4", "llama4", "qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe")


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


# vision_config fields that are not sizes; every other field read is a positive integer.
_NOT_SIZES = {"vision_use_head", "deepstack_visual_indexes", "pixel_shuffle_ratio"}


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
    raise ConfigError(where, "vision_config.model_type", f"is {vt!r}, a tower vramcalc does not count yet")


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
    return VisionSpec(kind="qwen3_vl_vision" if deepstack else "qwen3_5_vision", params=embed + n * layer + merger,
                      hidden_size=h, num_layers=n)
