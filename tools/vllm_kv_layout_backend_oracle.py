"""VLLM_KV_CACHE_LAYOUT against the attention backends vLLM picks on each NVIDIA GPU, judged by vLLM's own code
on a CPU machine: tests/data/vllm_kv_layout_backend_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_kv_layout_backend_oracle.py \
        --out tests/data/vllm_kv_layout_backend_oracle_v0.34.0.json
    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_kv_layout_backend_oracle.py \
        --out tests/data/vllm_kv_layout_backend_oracle_v0.33.0.json --cases 42 44 46 12 15 16 39 40 41

(the 0.33.0 subset: where FlashInfer runs off SM 10.x, whose layouts 0.33.0 does not restrict there, and a few
others).

Per model and compute capability, in a fresh interpreter (--case N): the platform's device capability answered
as the case's (vllm/platforms/interface.py Platform.get_device_capability, on the CPU platform that builds the
model and on CudaPlatform), EngineArgs.create_engine_config (so the model's own VerifyAndUpdateConfig, e.g.
Gemma4Config's FA4 / TRITON_ATTN choice, sees that GPU), the model class built on the meta device
(tools/vllm_oracle.py). Each attention layer's selection (vllm/v1/attention/selector.py get_attn_backend, the
AttentionSelectorConfig the layer builds) is handed to vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls
as well: the backend CUDA picks is recorded per layer kind, while the CPU backend builds the model. The
worker's layout set is then vllm/v1/attention/backends/utils.py get_supported_kv_cache_layouts over the CUDA
backends and the model's other (Mamba-type) layer backends, as vllm/v1/worker/worker_base.py
get_supported_kv_cache_layouts reports it, and resolve_kv_cache_layout runs on it with the layers' KV specs for
VLLM_KV_CACHE_LAYOUT unset and each of its eight names (vllm/envs.py): the layout chosen or the refusal.

What the CPU machine lacks is stood in for as vLLM's default CUDA install has it: the CUDA wheel's FlashAttention
extensions (vllm/vllm_flash_attn/_vllm_fa2_C, _vllm_fa3_C: empty modules, so FA2 / FA3 count as built, as
vllm_flash_attn/flash_attn_interface.py reads them; FA4 is the cute/ sources the wheel ships), the two
FlashAttention checks that ask whether the platform is CUDA (fa_utils.py is_flash_attn_varlen_func_available,
flash_attn_supports_mla) answered as on CUDA, FlashMLA's
(vllm/v1/attention/ops/flashmla.py availability flags) and the flashinfer package, which vLLM's CUDA
requirements pin (its modules stood in for by empty classes; the selection reads none of its kernels), with its
TRT-LLM cubins taken as reachable (VLLM_HAS_FLASHINFER_CUBIN=1: vllm/utils/flashinfer.py has_nvidia_artifactory,
which FlashInferBackend.supports_sink reads for a model with attention sinks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import types
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

MODELS = ["Qwen__Qwen3-0.6B", "google__gemma-3-1b-it", "google__gemma-4-31B-it", "deepseek-ai__DeepSeek-V2-Lite",
          "ai21labs__Jamba-v0.1", "Qwen__Qwen3-Next-80B-A3B-Thinking", "openai__gpt-oss-20b"]
CAPS = [(8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]
LAYOUTS = [None, "LBNHC", "LBHNC", "LHBNC", "BLHNC", "BLNHC", "BHLNC", "NHD", "HND"]
# (catalog stem, compute capability, --kv-cache-dtype): every model with the checkpoint's KV dtype, then an fp8
# KV cache, which FlashAttention takes only on SM 9.0 / 10.0 (vllm/v1/attention/backends/fa_utils.py)
CASES = [(m, cc, "auto") for m in MODELS for cc in CAPS] + [
    (m, cc, "fp8") for m in ("Qwen__Qwen3-0.6B", "google__gemma-3-1b-it") for cc in CAPS]
# --attention-backend given (cases 54-62): Gemma 4's mixed head sizes (256 / 512) where FA4 does not run (SM 8.0),
# runs with FA3 the default (SM 9.0) and runs by default (SM 10.0), each backend vramcalc models
FORCED = ["FLASH_ATTN", "FLASHINFER", "TRITON_ATTN"]
FORCED_CASES: list[tuple[str, tuple[int, int], str, str | None, dict[str, str]]] = [
    ("google__gemma-4-31B-it", cc, "auto", b, {}) for cc in ((8, 0), (9, 0), (10, 0)) for b in FORCED]
# VLLM_MLA_DISABLE=1 (cases 63-64): DeepSeek-V2's plain attention layers (K head 192) on an A100
FORCED_CASES += [("deepseek-ai__DeepSeek-V2-Lite", (8, 0), kv, None, {"VLLM_MLA_DISABLE": "1"}) for kv in ("auto", "fp8")]
# an fp8 KV cache for Gemma 4 on an RTX 3090 (case 65): Gemma4Config's TRITON_ATTN, or FlashInfer
FORCED_CASES += [("google__gemma-4-31B-it", (8, 6), "fp8_e4m3", None, {})]


def _stand_ins() -> None:
    import importlib.machinery

    sys.path.insert(0, os.path.dirname(__file__))
    from vllm_flashinfer_workspace_oracle import _Stub

    class _Meta(type):  # a stood-in class answers any attribute (a kernel method read at import)
        def __getattr__(cls, n: str) -> Any:
            if n.startswith("__"):
                raise AttributeError(n)
            return lambda *a, **k: None

    class _ClassStub(_Stub):
        def create_module(self, spec: Any) -> Any:
            class _Mod(types.ModuleType):
                def __getattr__(self, n: str) -> Any:
                    if n.startswith("__"):
                        raise AttributeError(n)
                    return _Meta(n, (), {"__init__": lambda self, *a, **k: None})
            return _Mod(spec.name)

    sys.meta_path.insert(0, _ClassStub())
    sys.modules.setdefault("vllm._C_stable_libtorch", types.ModuleType("vllm._C_stable_libtorch"))
    for n in ("vllm.vllm_flash_attn._vllm_fa2_C", "vllm.vllm_flash_attn._vllm_fa3_C"):
        m = types.ModuleType(n)
        m.__spec__ = importlib.machinery.ModuleSpec(n, None)
        sys.modules[n] = m


def run_case(i: int) -> dict[str, Any]:
    stem, cc, kv_dtype, forced, env = (CASES[i] + (None, {})) if i < len(CASES) else FORCED_CASES[i - len(CASES)]
    os.environ.update(env)
    if forced is not None:  # EngineArgs.attention_backend, as --attention-backend sets it
        os.environ["VLLM_ORACLE_ENGINE_ARGS"] = json.dumps({"attention_backend": forced})
    vo.setup()
    _stand_ins()
    import vllm.v1.attention.selector as selector
    from vllm.model_executor.layers.attention_layer_base import AttentionLayerBase
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.platforms import current_platform
    from vllm.platforms.cuda import CudaPlatform
    from vllm.platforms.interface import DeviceCapability, Platform
    from vllm.v1.attention.backends.utils import get_supported_kv_cache_layouts, resolve_kv_cache_layout

    cap = classmethod(lambda cls, device_id=0: DeviceCapability(*cc))
    CudaPlatform.get_device_capability = cap  # type: ignore[method-assign,assignment]
    type(current_platform).get_device_capability = cap  # type: ignore[method-assign]
    with contextlib.suppress(ImportError):
        import vllm.v1.attention.ops.flashmla as fm

        fm._flashmla_C_AVAILABLE = True  # type: ignore[attr-defined]
        fm._flashmla_extension_C_AVAILABLE = True  # type: ignore[attr-defined]

    # the two FlashAttention checks that ask the platform whether it is CUDA, answered as CudaPlatform does:
    # fa_utils.py is_flash_attn_varlen_func_available (True on CUDA; FlashAttentionBackend.supports_sink reads it)
    # and flash_attn_supports_mla (FA3 on SM 9.x; FlashAttnMLABackend reads it)
    import vllm.v1.attention.backends.fa_utils as fa_utils
    import vllm.v1.attention.backends.flash_attn as flash_attn

    def fa_mla() -> bool:
        from vllm.vllm_flash_attn.flash_attn_interface import is_fa_version_supported

        return is_fa_version_supported(3) and current_platform.is_device_capability_family(90)

    flash_attn.is_flash_attn_varlen_func_available = lambda: True  # type: ignore[attr-defined]
    # imported by flash_attn.py only where that check passes at import (the CUDA build)
    flash_attn.flash_attn_supports_sinks = fa_utils.flash_attn_supports_sinks  # type: ignore[attr-defined]
    fa_utils.flash_attn_supports_mla = fa_mla  # type: ignore[assignment]
    with contextlib.suppress(ImportError):
        import vllm.v1.attention.backends.mla.flashattn_mla as flashattn_mla

        flashattn_mla.flash_attn_supports_mla = fa_mla  # type: ignore[attr-defined]

    picks: dict[str, Any] = {}
    cuda_classes: dict[str, Any] = {}
    orig = selector._cached_get_attn_backend

    def record(backend: Any, attn_selector_config: Any, num_heads: Any = None, **kw: Any) -> Any:
        c = attn_selector_config
        key = (f"head_size={c.head_size} mla={c.use_mla} sink={c.has_sink} sliding={c.has_sliding_window} "
               f"kv={c.kv_cache_dtype} type={c.attn_type}")
        row: dict[str, Any] = {"head_size": c.head_size, "use_mla": c.use_mla, "has_sink": c.has_sink,
                               "has_sliding_window": c.has_sliding_window, "kv_cache_dtype": c.kv_cache_dtype,
                               "attn_type": c.attn_type, "selected": getattr(backend, "name", None)}
        try:
            path = CudaPlatform.get_attn_backend_cls(backend, attn_selector_config=c, num_heads=num_heads)
            from vllm.utils.import_utils import resolve_obj_by_qualname

            cls = resolve_obj_by_qualname(path)
            row["backend"] = cls.get_name()
            cuda_classes[cls.get_name()] = cls
        except Exception as e:
            row["error"] = vo.refusal_text(e, 600)
        picks[key] = row
        return orig(None, attn_selector_config, num_heads, **kw)

    selector._cached_get_attn_backend = record  # type: ignore[assignment]
    entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
    config = vo._as_read(vo._catalog_config(entry["repo_id"]))
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    if isinstance(config.get("text_config"), dict):
        config["text_config"] = {k: v for k, v in config["text_config"].items() if k != "quantization_config"}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, 1, kv_dtype, 4096)
        vo._init_group(1, cfg)
        vo.cuda_like(cfg)
        with vo.meta_models(cfg):
            initialize_model(vllm_config=cfg)
    row: dict[str, Any] = {"model": entry["repo_id"], "compute_capability": f"{cc[0]}.{cc[1]}",
                           "kv_cache_dtype": kv_dtype, "attention_backend": forced, "env": env,
                           "attention_config_backend": getattr(cfg.attention_config.backend, "name", None),
                           "flash_attn_version": cfg.attention_config.flash_attn_version,
                           "layer_kinds": sorted(picks.values(), key=lambda r: json.dumps(r, sort_keys=True))}
    # the layers that do not go through get_attn_backend (Mamba-type: selector.py get_mamba_attn_backend) keep
    # the backend they were built with; the attention layers' are CUDA's, recorded above
    others = {}
    for layer in vo._vllm_config("get_layers_from_vllm_config")(cfg, AttentionLayerBase).values():  # type: ignore
        b = layer.get_attn_backend()
        if b.is_ssm():
            others[b.get_name()] = b
    row["other_backends"] = sorted(others)
    backends = list(cuda_classes.values()) + list(others.values())
    supported = [m.name for m in get_supported_kv_cache_layouts(backends)]
    row["supported_layouts"] = supported
    vo._cuda_backends(cfg)
    cfg.cache_config.mamba_page_size_padded = None
    Platform.update_block_size_for_backend(cfg)
    specs = vo._specs(cfg)
    row["page_sizes"] = sorted({s.page_size_bytes for s in specs.values()})
    row["resolutions"] = {}
    for name in LAYOUTS:
        os.environ.pop("VLLM_KV_CACHE_LAYOUT", None)
        if name is not None:
            os.environ["VLLM_KV_CACHE_LAYOUT"] = name
        cfg.cache_config.kv_cache_layout = None
        try:
            out = {"kv_cache_layout": resolve_kv_cache_layout(cfg, [supported], list(specs.values())).name}
        except ValueError as e:
            out = {"refusal": str(e)}
        row["resolutions"][name or "default"] = out
    return row


def produced_by(release: str, cases: list[int] | None) -> str:
    return (
        f"vLLM {release} wheel, run on CPU: VLLM_TARGET_DEVICE=cpu python tools/vllm_kv_layout_backend_oracle.py"
        + (f" --cases {' '.join(map(str, cases))}" if cases is not None else "") + ". "
        "Per model and compute capability (the platform's device capability answered as the case's): "
        "EngineArgs.create_engine_config, the model built on the meta device, each attention layer's "
        "AttentionSelectorConfig handed to vllm/platforms/cuda.py CudaPlatform.get_attn_backend_cls (the backend "
        "recorded per layer kind), vllm/v1/attention/backends/utils.py get_supported_kv_cache_layouts over those "
        "backends and the Mamba-type layers', and resolve_kv_cache_layout with the layers' KV specs for "
        "VLLM_KV_CACHE_LAYOUT unset and each of its eight names. vLLM's default CUDA install is taken: the wheel's "
        "FlashAttention and FlashMLA extensions built (and fa_utils.py's CUDA-only checks answered as on CUDA), "
        "flashinfer-python installed (stood in for: the selection "
        "calls none of their kernels) and its TRT-LLM cubins reachable (VLLM_HAS_FLASHINFER_CUBIN=1, as "
        "vllm/utils/flashinfer.py has_nvidia_artifactory reads them). Quantization configs are dropped (the "
        "selection reads the KV dtype only)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--case", type=int, default=None)
    ap.add_argument("--cases", type=int, nargs="*", default=None, help="a subset of the cases, by index")
    a = ap.parse_args()
    if a.case is not None:
        vo.print_case_row(lambda: run_case(a.case))
        return
    rows = []
    for i in (a.cases if a.cases is not None else range(len(CASES))):
        row = vo.case_in_subprocess(__file__, a.out, i, {"VLLM_HAS_FLASHINFER_CUBIN": "1"})
        case = CASES[i] if i < len(CASES) else FORCED_CASES[i - len(CASES)]
        row.setdefault("model", case[0])
        row.setdefault("compute_capability", "%d.%d" % case[1])
        row.setdefault("kv_cache_dtype", case[2])
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    import importlib.metadata as md

    release = md.version("vllm").split("+")[0]
    doc = {"release": release, "cases": rows, "produced_by": produced_by(release, a.cases)}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
