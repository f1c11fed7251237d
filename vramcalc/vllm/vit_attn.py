"""--mm-encoder-attn-backend: the vision encoder's attention kernel as vLLM v0.34.0 parses, checks and picks it
(data/vllm_features.json multimodal.encoder_attn_backend names the source; tests/test_vllm_vit_attn_backend.py
checks it against tests/data/vllm_vit_attn_backend_oracle_v0.34.0.json)."""

from __future__ import annotations

from ..errors import InputError
from ..gpus import GPU

WHERE = "vllm/platforms/cuda.py CudaPlatform.get_vit_attn_backend"


def _rules():  # type: ignore[no-untyped-def]
    from .features import features

    return features().multimodal.encoder_attn_backend


def parse(value: str) -> str:
    """MultiModalConfig._validate_mm_encoder_attn_backend: the AttentionBackendEnum name, or vLLM's error."""
    r = _rules()
    name = value.upper()
    if name in r.removed:
        raise InputError(f"ValueError: {r.removed[name]}")
    if name not in r.enum_names:
        raise InputError("ValueError: " + r.unknown.format(name=name, names=", ".join(r.enum_names)))
    return name


def _cc(gpu: GPU) -> tuple[int, int]:
    major, _, minor = (gpu.compute_capability or "0.0").partition(".")
    return int(major), int(minor or 0)


def supported(gpu: GPU) -> tuple[list[str], str]:
    """get_supported_vit_attn_backends on this GPU's platform, in order, and the list as the assertion prints it."""
    r = _rules()
    if gpu.vendor == "amd":
        return r.rocm_supported, r.rocm_listing
    key = "8.0" if _cc(gpu) >= (8, 0) else "below"
    return r.cuda_supported[key], r.cuda_listing[key]


def refusal(gpu: GPU, name: str) -> str | None:
    """The AssertionError get_vit_attn_backend raises for a backend the platform does not offer, else None."""
    names, listing = supported(gpu)
    return None if name in names else "AssertionError: " + _rules().refusal.format(name=name, listing=listing)


def default_pick(gpu: GPU, head_size: int, dtype: str) -> str | None:
    """CudaPlatform.get_vit_attn_backend with no backend given: the first of the platform's list whose class supports
    the head size, dtype and compute capability, TORCH_SDPA as soon as it is reached. None off NVIDIA (ROCm's pick
    reads AITER's switches and the flash_attn package: not read here)."""
    if gpu.vendor != "nvidia":
        return None
    r = _rules()
    cc = _cc(gpu)
    for name in supported(gpu)[0]:
        if name == "TORCH_SDPA":
            return name
        s = r.backend_support.get(name)
        if s is None or s.dtypes is None:  # FLASHINFER: after TORCH_SDPA in both lists
            continue
        ok = (dtype in (s.dtypes or ())) and (s.head_size_multiple is None or head_size % s.head_size_multiple == 0) \
            and (s.max_head_size is None or head_size <= s.max_head_size) \
            and (s.min_head_size is None or head_size >= s.min_head_size)
        if s.min_compute_capability is not None:
            major, _, minor = s.min_compute_capability.partition(".")
            ok = ok and cc >= (int(major), int(minor or 0))
        if ok:
            return name
    return "TORCH_SDPA"
