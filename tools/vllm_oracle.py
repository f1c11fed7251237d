"""vLLM's own KV-cache planning, run on a CPU machine, as the oracle for vramcalc/vllm/kv.py.

Run with a throwaway venv holding the vllm wheel (--no-deps), torch 2.13.0+cpu and vLLM's light imports,
never vramcalc's environment:

    for tp in 1 2 4 8; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_oracle.py \
        --tp $tp --out /tmp/oracle-0.33.0-tp$tp.json; done
    python3 tools/vllm_oracle_fixture.py tests/data/vllm_oracle/v0.33.0.json /tmp/oracle-0.33.0-tp*.json

(--models STEM... for a subset; `--onto FIXTURE` to tools/vllm_oracle_fixture.py replaces those cases of a
fixture and keeps the rest.) A flag's fixture runs with it set: VLLM_ORACLE_DISABLE_SLIDING_WINDOW=1,
VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS=0,sliding_window, VLLM_ORACLE_ENGINE_ARGS='{"mamba_block_size": 64}' (any
EngineArgs fields as JSON, replacing the defaults below), or vLLM's own variables (VLLM_MLA_DISABLE=1); each is
named in the file's produced_by and recorded per case. VLLM_ORACLE_SUPPORTED_LAYOUTS=LBNHC,LBHNC,... sets the
layouts the backends declare (default LBNHC,LBHNC), so that VLLM_KV_CACHE_LAYOUT's resolution runs as vLLM's and
its refusal is recorded.

For each catalog config (vramcalc/data/models/*.json, written to a temp dir) and TP degree it builds vLLM's
VllmConfig (EngineArgs.create_engine_config), builds the model class on the meta device under
set_current_vllm_config inside a TP process group (torch's fake process group stands in for the other ranks:
vLLM's layers only read the world size and rank), then takes each attention layer's KV cache spec the way
GPUModelRunner.get_kv_cache_spec does and hands them to vllm/v1/core/kv_cache_planning.py
(get_global_kv_cache_groups, get_kv_cache_configs, estimate_max_model_len, check_enough_kv_cache_memory,
after vllm/v1/attention/backends/utils.py resolve_kv_cache_layout) for each memory given.

The CUDA platform's block-size rules are applied, not the CPU platform's: every non-MLA attention layer runs
FlashAttentionBackend (its kernel block sizes, MultipleOf(16)), MLA layers TritonMLABackend, and the block
size is chosen by the base Platform.update_block_size_for_backend (the one CudaPlatform inherits), with the
hybrid alignment. The default dtype is the model's, or shapes would come out float32.

Only figures are written (page sizes, block sizes, groups, blocks, tokens, concurrency, estimated maximum
length, weight bytes per rank, refusal text), one JSON file per release.

Release branches (each marked where it is taken): 0.33 plans with v1/core/kv_cache_planning.py; 0.2x-0.30 with
v1/core/kv_cache_utils.py (_plan_utils: 0.30 resolves the KV layout first and counts tokens with
get_kv_cache_capacity, 0.21-0.2x as _report_kv_cache_config logs them, up to 0.20 num_blocks // groups x block);
from 0.25 the platform is resolved while `import vllm` runs, so the CUDA wheel is told it is a CPU build before
that (main); 0.11 (_legacy) takes the specs from GPUModelRunner.get_kv_cache_spec, keeps the block size its
VllmConfig chose and runs the CPU platform's checks on CUDA's values (_cpu_check_as_cuda). The 0.11, 0.25 and
0.30 fixtures ran with torch 2.13.0+cpu, vllm --no-deps and transformers 4.57 (0.11) or 5.24 (0.25, 0.30).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

GIB = 2**30
_TV_LIB: list[Any] = []


def _torchvision_stub() -> None:
    """The PyPI torchvision wheel's C ops do not load against the CPU torch wheel; its fake-kernel module then
    fails on the two ops it registers unconditionally. Declare them (vLLM's multimodal processors only
    import torchvision's transforms)."""
    import torch

    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.append(lib)
    # vLLM inspects model classes in a subprocess (model_executor/models/registry.py): it needs the stub too
    d = tempfile.mkdtemp(prefix="vllm_oracle_site")
    with open(os.path.join(d, "sitecustomize.py"), "w") as f:
        f.write("import torch\n_l = torch.library.Library('torchvision', 'DEF')\n"
                "for _op in ('nms', 'qnms'):\n"
                "    _l.define(_op + '(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')\n")
    os.environ["PYTHONPATH"] = d + os.pathsep + os.environ.get("PYTHONPATH", "")


def _custom_op_stub() -> None:
    """Releases whose PyPI wheel is a CUDA build (0.2x): its vllm._C does not load against the CPU torch
    wheel, and activation layers take their op at construction (model_executor/layers/activation.py, e.g.
    GeluAndMul.__init__: torch.ops._C.gelu_tanh_and_mul). Declare the ones that are missing; none runs on
    the meta device."""
    import torch

    ops = ("gelu_and_mul", "gelu_tanh_and_mul", "gelu_fast", "gelu_new", "gelu_quick", "silu_and_mul",
           "mul_and_silu", "fatrelu_and_mul", "silu_and_mul_with_clamp")
    missing = [op for op in ops if not hasattr(torch.ops._C, op)]
    if not missing:
        return
    lib = torch.library.Library("_C", "FRAGMENT")
    for op in missing:
        lib.define(f"{op}(Tensor(a!) out, Tensor input) -> ()")
    _TV_LIB.append(lib)


def _vllm_config(name: str) -> Any:
    """set_current_vllm_config / get_layers_from_vllm_config: vllm/config/vllm.py from 0.2x, vllm/config/__init__.py
    in 0.11."""
    try:
        import vllm.config.vllm as mod
    except ImportError:  # 0.11
        import vllm.config as mod
    return getattr(mod, name)


def _legacy() -> bool:
    """0.11: GPUModelRunner builds the attention specs itself and the CUDA platform sets the block size in
    check_and_update_config (no Platform.update_block_size_for_backend, no layer get_kv_cache_spec)."""
    from vllm.platforms.interface import Platform

    return not hasattr(Platform, "update_block_size_for_backend")


# EngineArgs fields set on top of the oracle's own (tools/vllm_flag_oracle.py: one serve flag per case)
EXTRA_ARGS: dict[str, Any] = {}

MODELS = os.path.join(os.path.dirname(__file__), "..", "vramcalc", "data", "models")


_GROUP: list[int] = []


def _init_group(tp: int, cfg: Any) -> None:
    """A TP group of `tp` ranks in this one process: torch's fake process group answers the world size and
    rank; vLLM's subgroups are created on it too."""
    import torch.distributed as dist
    from vllm.distributed import parallel_state as ps

    set_current_vllm_config = _vllm_config("set_current_vllm_config")

    if _GROUP:  # the model groups are made per model: an EP group exists only for MoE models
        ps.destroy_model_parallel()
        with set_current_vllm_config(cfg):
            ps.ensure_model_parallel_initialized(tp, 1, **_dcp(cfg))
        return
    _GROUP.append(tp)
    from vllm.distributed.device_communicators.shm_broadcast import MessageQueue

    # the broadcast queue waits for the other ranks' processes; there are none
    MessageQueue.create_from_process_group = staticmethod(lambda *a, **k: None)  # type: ignore[method-assign]
    from torch.testing._internal.distributed.fake_pg import FakeStore

    orig_new_group = dist.new_group

    def new_group(*args: Any, **kwargs: Any) -> Any:
        kwargs["backend"] = "fake"
        return orig_new_group(*args, **kwargs)

    dist.new_group = new_group  # type: ignore[assignment]
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=tp)

    with set_current_vllm_config(cfg):
        ps.init_distributed_environment(world_size=tp, rank=0, distributed_init_method="env://", local_rank=0,
                                        backend="fake")
        ps.ensure_model_parallel_initialized(tp, 1, **_dcp(cfg))


def _dcp(cfg: Any) -> dict[str, int]:
    """--decode-context-parallel-size: its groups are carved out of the TP ranks (parallel_state.py
    initialize_model_parallel; named only where set, for the releases without it)."""
    dcp = int(getattr(cfg.parallel_config, "decode_context_parallel_size", 1) or 1)
    return {"decode_context_model_parallel_size": dcp} if dcp > 1 else {}


def cuda_like(cfg: Any) -> None:
    """Undo the CPU platform's choices the CUDA one does not make: block size 16 (CacheConfig.DEFAULT_BLOCK_SIZE),
    and async scheduling on, with which two batches are in flight (VllmConfig.max_concurrent_batches), which
    sliding-window specs reserve for. 0.11: the block size is already CUDA's (16, or the hybrid alignment of
    HybridAttentionMambaModelConfig.verify_and_update_config, run while VllmConfig is built)."""
    if not _legacy():
        cfg.cache_config.block_size = 16
        cfg.cache_config.user_specified_block_size = False
    # a pooling runner turns async scheduling off by default (vllm/config/vllm.py VllmConfig.__post_init__), on CUDA too
    if getattr(cfg.model_config, "runner_type", "generate") != "pooling":
        cfg.scheduler_config.async_scheduling = True


@contextlib.contextmanager
def meta_models(cfg: Any) -> Any:
    """Build model classes under `cfg` on the meta device, in the model's dtype (or shapes come out float32)."""
    import torch

    set_current_vllm_config = _vllm_config("set_current_vllm_config")
    old = torch.get_default_dtype()
    torch.set_default_dtype(cfg.model_config.dtype)
    try:
        with set_current_vllm_config(cfg), torch.device("meta"):
            yield
    finally:
        torch.set_default_dtype(old)


def _config(model_dir: str, tp: int, kv_dtype: str, max_len: int | None) -> Any:
    import torch
    from vllm.engine.arg_utils import EngineArgs

    # the CPU platform resets the SSM state dtype to float32 for its own GDN kernels on AVX-512 BF16
    # machines (platforms/cpu.py check_and_update_config); CUDA keeps mamba_ssm_cache_dtype as configured
    torch.cpu._is_avx512_bf16_supported = lambda: False
    # 0.3x: the CPU attention backend takes an fp8 KV cache only on an AVX-512 / AMX host
    # (v1/attention/backends/cpu_attn.py CPUAttentionBackend.supports_kv_cache_dtype); the oracle runs no
    # kernel and swaps CUDA's backends in (_cuda_backends), so the dtype is taken on any host
    with contextlib.suppress(ImportError, AttributeError):
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        if hasattr(CPUAttentionBackend, "supports_kv_cache_dtype"):
            CPUAttentionBackend.supports_kv_cache_dtype = classmethod(  # type: ignore[method-assign]
                lambda cls, d: d is None or d in ("bfloat16", "float16") or d in cls.supported_kv_cache_dtypes
                or any(d.startswith(pre) for pre, _ in _packed_kv_backends()))
    try:
        import vllm.v1.core.kv_cache_planning  # noqa: F401
    except ImportError:
        # up to 0.2x the CPU platform refuses an fp8 KV cache with chunked prefill, or falls back to auto
        # (platforms/cpu.py check_and_update_config); CUDA keeps it
        import vllm.platforms.cpu as cpu_platform

        if hasattr(cpu_platform, "is_quantized_kv_cache"):
            cpu_platform.is_quantized_kv_cache = lambda dtype: False  # type: ignore[attr-defined]
        # and the CPU attention kernel refuses it at construction; the oracle runs no kernel
        with contextlib.suppress(ImportError):
            import vllm.v1.attention.backends.cpu_attn as cpu_attn

            if hasattr(cpu_attn, "is_quantized_kv_cache"):
                cpu_attn.is_quantized_kv_cache = lambda dtype: False  # type: ignore[attr-defined]

    if _legacy():
        _cpu_check_as_cuda()
        # 0.11 vllm/engine/arg_utils.py _is_v1_supported_oracle refuses V1 for sliding windows on the CPU
        # backend only; the CUDA one runs them on V1
        EngineArgs._is_v1_supported_oracle = lambda self, model_config: True  # type: ignore[method-assign]
    extra: dict[str, Any] = {}
    if "swap_space" in getattr(EngineArgs, "__dataclass_fields__", {}):
        # 0.11: CacheConfig refuses a swap space (4 GiB per GPU, host memory only) above this host's memory
        extra["swap_space"] = 0
    if os.environ.get("VLLM_ORACLE_DISABLE_SLIDING_WINDOW"):  # --disable-sliding-window (ModelConfig)
        extra["disable_sliding_window"] = True
    extra.update(EXTRA_ARGS)  # further EngineArgs fields, as a serve flag sets them (tools/vllm_flag_oracle.py)
    if os.environ.get("VLLM_ORACLE_ENGINE_ARGS"):  # other EngineArgs fields, as JSON (e.g. mamba_block_size)
        extra.update(json.loads(os.environ["VLLM_ORACLE_ENGINE_ARGS"]))
    if os.environ.get("VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS"):  # --kv-cache-dtype-skip-layers (CacheConfig)
        extra["kv_cache_dtype_skip_layers"] = os.environ["VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS"].split(",")
    args: dict[str, Any] = dict(model=model_dir, skip_tokenizer_init=True, load_format="dummy",
                                tensor_parallel_size=tp, kv_cache_dtype=kv_dtype, max_model_len=max_len,
                                max_num_batched_tokens=8192, max_num_seqs=256, async_scheduling=True,
                                distributed_executor_backend="uni" if tp == 1 else "mp")
    args.update(extra)  # VLLM_ORACLE_ENGINE_ARGS may replace a default (async_scheduling null: vLLM's own choice)
    return EngineArgs(**args).create_engine_config()


def _cpu_check_as_cuda() -> None:
    """0.11 vllm/platforms/cpu.py CpuPlatform.check_and_update_config refuses a block size other than 16 without
    IPEX (the hybrid alignment sets one), refuses an fp8 KV cache with chunked prefill and turns fp8_e4m3 into
    fp8_e5m2; CudaPlatform.check_and_update_config does none of these. The CPU check runs on a block size of
    16 and an `auto` KV dtype, and the values it was handed are put back."""
    from vllm.platforms.cpu import CpuPlatform

    if getattr(CpuPlatform, "_oracle_wrapped", False):
        return
    orig = CpuPlatform.check_and_update_config.__func__  # type: ignore[attr-defined]

    def check(cls: Any, vllm_config: Any) -> None:
        cc = vllm_config.cache_config
        bs, dt = cc.block_size, cc.cache_dtype
        if bs is not None:
            cc.block_size = 16
        cc.cache_dtype = "auto"
        orig(cls, vllm_config)
        cc.block_size = bs if bs is not None else 16  # CudaPlatform: 16 where none is set
        cc.cache_dtype = dt

    CpuPlatform.check_and_update_config = classmethod(check)  # type: ignore[method-assign,assignment]
    CpuPlatform._oracle_wrapped = True  # type: ignore[attr-defined]


def _legacy_specs(cfg: Any) -> dict[str, Any]:
    """0.11: vllm/v1/worker/gpu_model_runner.py GPUModelRunner.get_kv_cache_spec, run on the attributes it reads
    (the KV dtype as GPUModelRunner.__init__ resolves it)."""
    from types import SimpleNamespace

    from vllm.utils import STR_DTYPE_TO_TORCH_DTYPE
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    cc = cfg.cache_config
    kv_dtype = cfg.model_config.dtype if cc.cache_dtype == "auto" else STR_DTYPE_TO_TORCH_DTYPE[cc.cache_dtype]
    runner = SimpleNamespace(vllm_config=cfg, shared_kv_cache_layers={}, kv_cache_dtype=kv_dtype,
                             attention_chunk_size=cfg.model_config.attention_chunk_size,
                             speculative_config=cfg.speculative_config, runner_only_attn_layers=set())
    return GPUModelRunner.get_kv_cache_spec(runner)  # type: ignore[arg-type]


def _cuda_backends(cfg: Any) -> str:
    """Give every attention layer the backend CUDA would: FlashAttention (MLA: Triton MLA). 0.11: the runner's
    specs do not depend on the backend; none is swapped."""
    if _legacy():
        return "none (0.11: GPUModelRunner.get_kv_cache_spec)"
    get_layers_from_vllm_config = _vllm_config("get_layers_from_vllm_config")
    from vllm.model_executor.layers.attention_layer_base import AttentionLayerBase
    from vllm.v1.attention.backends.flash_attn import FlashAttentionBackend
    from vllm.v1.attention.backends.mla.triton_mla import TritonMLABackend

    packed = _packed_kv_backends()
    names = set()
    for layer in get_layers_from_vllm_config(cfg, AttentionLayerBase).values():  # type: ignore[type-abstract]
        b = layer.get_attn_backend()
        if b.is_ssm():
            continue
        # a packed KV dtype runs on the one CUDA backend that takes it (platforms/cuda.py priority list,
        # supports_kv_cache_dtype); a layer it skips (kv_cache_dtype_skip_layers: `auto`) on FlashAttention
        kv = getattr(layer, "kv_cache_dtype", "auto")
        new = TritonMLABackend if b.is_mla() else next((cls for pre, cls in packed if kv.startswith(pre)),
                                                       FlashAttentionBackend)
        layer.attn_backend = new
        names.add(new.get_name())
    return "/".join(sorted(names))


def _packed_kv_backends() -> list[tuple[str, Any]]:
    """0.33: the KV dtypes only one CUDA backend takes (vllm/config/cache.py CacheDType): TurboQuant's presets
    (v1/attention/backends/turboquant_attn.py) and the per-token-head modes (v1/attention/backends/triton_attn.py,
    TritonAttentionBackend.supported_kv_cache_dtypes). Earlier releases have none."""
    try:
        from vllm.v1.attention.backends.triton_attn import TritonAttentionBackend
        from vllm.v1.attention.backends.turboquant_attn import TurboQuantAttentionBackend
    except ImportError:
        return []
    return [("turboquant_", TurboQuantAttentionBackend), ("int8_per_token_head", TritonAttentionBackend),
            ("fp8_per_token_head", TritonAttentionBackend), ("int4_per_token_head", TritonAttentionBackend)]


def _specs(cfg: Any) -> dict[str, Any]:
    """GPUModelRunner.get_kv_cache_spec: layers sharing another's KV get none."""
    if _legacy():
        return _legacy_specs(cfg)
    get_layers_from_vllm_config = _vllm_config("get_layers_from_vllm_config")
    from vllm.model_executor.layers.attention.attention import Attention
    from vllm.model_executor.layers.attention_layer_base import AttentionLayerBase
    from vllm.v1.kv_cache_interface import AttentionSpec

    try:  # 0.2x: the runner takes each layer's spec as it is
        from vllm.v1.worker.utils import customize_attention_spec
    except ImportError:
        def customize_attention_spec(backend: Any, spec: Any) -> Any:
            return spec

    out = {}
    for name, layer in get_layers_from_vllm_config(cfg, AttentionLayerBase).items():  # type: ignore[type-abstract]
        if isinstance(layer, Attention) and layer.kv_sharing_target_layer_name:
            continue
        spec = layer.get_kv_cache_spec(cfg)
        if spec:
            if isinstance(spec, AttentionSpec):
                spec = customize_attention_spec(layer.get_attn_backend(), spec)
            out[name] = spec
    return out


def _layer_row(spec: Any) -> dict[str, Any]:
    row = {"kind": type(spec).__name__, "block_size": spec.block_size, "page_size_bytes": spec.page_size_bytes}
    for f in ("num_kv_heads", "head_size", "head_size_v", "sliding_window", "attention_chunk_size"):
        v = getattr(spec, f, None)
        if v is not None:
            row[f] = v
    return row


def _plan(cfg: Any, specs: dict[str, Any], memory: int) -> dict[str, Any]:
    # 0.11 kv_cache_utils.estimate_max_model_len leaves model_config.max_model_len at the last length its binary
    # search tried (the engine stops on the refusal; the oracle plans the next budget): it is put back
    max_len = cfg.model_config.max_model_len
    try:
        try:
            import vllm.v1.core.kv_cache_planning  # noqa: F401
        except ImportError:
            return _plan_utils(cfg, specs, memory)
        return _plan_planning(cfg, specs, memory)
    finally:
        cfg.model_config.max_model_len = max_len


def _group_rows(groups: Any) -> list[dict[str, Any]]:
    return [{"kind": type(g.kv_cache_spec).__name__, "layers": len(g.layer_names),
             "block_size": g.kv_cache_spec.block_size, "page_size_bytes": g.kv_cache_spec.page_size_bytes}
            for g in groups]


def _plan_utils(cfg: Any, specs: dict[str, Any], memory: int) -> dict[str, Any]:
    """Releases before kv_cache_planning.py (0.2x and older): vllm/v1/core/kv_cache_utils.py get_kv_cache_groups,
    get_kv_cache_configs, estimate_max_model_len, and the token count _report_kv_cache_config logs
    (num_blocks // groups x the smallest block size) with get_max_concurrency_for_kv_cache_config."""
    import copy

    from vllm.v1.core import kv_cache_utils as ku

    out: dict[str, Any] = {"memory_bytes": memory}
    # 0.30: get_kv_cache_configs refuses a layout not yet resolved; the engine core resolves it first
    # (v1/engine/core.py _initialize_kv_caches, resolve_kv_cache_layout)
    with contextlib.suppress(ImportError):
        from vllm.v1.attention.backends.utils import resolve_kv_cache_layout

        with contextlib.suppress(TypeError, AssertionError):
            resolve_kv_cache_layout(cfg, [["LBNHC", "LBHNC"]], [copy.copy(v) for v in specs.values()])
    out["groups"] = _group_rows(ku.get_kv_cache_groups(cfg, {k: copy.copy(v) for k, v in specs.items()}))
    try:
        confs = ku.get_kv_cache_configs(cfg, [{k: copy.copy(v) for k, v in specs.items()}], [memory])
    except ValueError as e:
        out["refusal"] = str(e)
        with contextlib.suppress(Exception):
            out["estimated_max_model_len"] = ku.estimate_max_model_len(
                cfg, {k: copy.copy(v) for k, v in specs.items()}, memory)
        return out
    kc = confs[0]
    bs = min(g.kv_cache_spec.block_size for g in kc.kv_cache_groups)
    conc = ku.get_max_concurrency_for_kv_cache_config(cfg, kc)
    if hasattr(ku, "get_kv_cache_capacity"):  # 0.30: the figures update_kv_cache_capacity logs
        tokens, conc = ku.get_kv_cache_capacity(cfg, ku.generate_scheduler_kv_cache_config(confs))
    elif "max_concurrency * " in _report_source(ku):  # 0.21-0.2x: _report_kv_cache_config logs concurrency x len
        tokens = int(conc * cfg.model_config.max_model_len)
    else:  # up to 0.20: num_blocks // groups x the smallest block size
        tokens = kc.num_blocks // len(kc.kv_cache_groups) * bs
    out.update(num_blocks=kc.num_blocks, kv_cache_tokens=tokens, max_concurrency=round(conc, 4), block_size=bs)
    return out


def _report_source(ku: Any) -> str:
    import inspect

    f = getattr(ku, "_report_kv_cache_config", None)
    return inspect.getsource(f) if f else ""


def _plan_planning(cfg: Any, specs: dict[str, Any], memory: int) -> dict[str, Any]:
    import copy

    from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
    from vllm.v1.core import kv_cache_planning as kp
    from vllm.v1.core.kv_cache_utils import get_kv_cache_capacity

    specs = {k: copy.copy(v) for k, v in specs.items()}  # grouping may unify them in place
    out: dict[str, Any] = {"memory_bytes": memory}
    layouts = [["LBNHC", "LBHNC"]]
    if os.environ.get("VLLM_ORACLE_SUPPORTED_LAYOUTS"):  # the layouts the backends declare, most preferred first
        # (FlashAttention declares none: v1/attention/backends/utils.py _DEFAULT_LAYOUT_PREFERENCE, 0.33.0)
        layouts = [os.environ["VLLM_ORACLE_SUPPORTED_LAYOUTS"].split(",")]
        try:
            resolve_kv_cache_layout(cfg, layouts, list(specs.values()))
        except ValueError as e:  # VLLM_KV_CACHE_LAYOUT outside the candidates: start-up fails
            out["refusal"] = str(e)
            return out
        out["kv_cache_layout"] = cfg.cache_config.kv_cache_layout
    with contextlib.suppress(Exception):
        resolve_kv_cache_layout(cfg, layouts, list(specs.values()))
    groups = kp.get_global_kv_cache_groups(cfg, [specs])
    out["groups"] = [{"kind": type(g.kv_cache_spec).__name__, "layers": len(g.layer_names),
                      "block_size": g.kv_cache_spec.block_size, "page_size_bytes": g.kv_cache_spec.page_size_bytes}
                     for g in groups]
    try:
        confs = kp.get_kv_cache_configs(cfg, [specs], [memory], groups)
    except ValueError as e:
        out["refusal"] = str(e)
        out["estimated_max_model_len"] = kp.estimate_max_model_len(cfg, specs, memory - kp._pool_bytes_per_block(
            cfg, kp.get_kv_cache_groups(cfg, dict(specs))))
        return out
    kc = confs[0]
    from vllm.v1.core.kv_cache_utils import generate_scheduler_kv_cache_config

    sched = generate_scheduler_kv_cache_config(confs)
    tokens, conc = get_kv_cache_capacity(cfg, sched)
    out.update(num_blocks=kc.num_blocks, kv_cache_tokens=tokens, max_concurrency=round(conc, 4),
               block_size=min(g.kv_cache_spec.block_size for g in sched.kv_cache_groups))
    return out


def run_one(path: str, tp: int, kv_dtype: str, memories: list[float], max_len: int | None) -> dict[str, Any]:
    """One model at one TP and KV dtype. A quantized checkpoint whose CUDA kernels cannot be chosen on a CPU
    is built unquantized: its KV specs do not depend on the weight format; its weights are then not
    recorded."""
    entry = json.load(open(path))
    config = _as_read(_catalog_config(entry["repo_id"]))
    try:
        return _run(entry, config, tp, kv_dtype, memories, max_len, True)
    except (ValueError, NotImplementedError) as e:  # the CPU build's kernel choice (0.33: WNA16 MoE too)
        if "Failed to find a kernel" not in str(e) and "MoE backend supports" not in str(e):
            raise
    # the KV dtype the checkpoint's quantization config gives `auto` is kept (ModelOpt / compressed-tensors
    # KV schemes): vllm/utils/torch_utils.py get_kv_cache_quant_algo_string, as resolve_kv_cache_dtype_string
    # applies it
    from vllm.utils.torch_utils import get_kv_cache_quant_algo_string

    qc = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    resolved = kv_dtype
    if kv_dtype == "auto" and isinstance(qc, dict):
        resolved = get_kv_cache_quant_algo_string(qc) or "auto"
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    if isinstance(config.get("text_config"), dict):
        config["text_config"] = {k: v for k, v in config["text_config"].items() if k != "quantization_config"}
    row = _run(entry, config, tp, resolved, memories, max_len, False)
    row.update(kv_cache_dtype=kv_dtype, kv_cache_dtype_built=resolved, built_unquantized=True)
    return row


def _catalog_config(repo: str) -> dict[str, Any]:
    """The config.json of the catalog entry: a partial copy completed from the entry it names in
    `architecture_from`, a ModelOpt hf_quant_config.json as its quantization_config (vramcalc/sources/catalog.py
    config_of). A copy without `architectures` is handed the causal-LM class transformers registers for its
    model_type (transformers/models/auto/modeling_auto.py MODEL_FOR_CAUSAL_LM_MAPPING_NAMES): without one vLLM
    resolves some (falcon_h1) to its embedding adapter, whose model has no lm_head."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from vramcalc.sources.catalog import config_of

    config = config_of(repo)
    if not config.get("architectures") and config.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        config = dict(config, architectures=[MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config["model_type"]]])
    return config


def _as_read(config: dict[str, Any]) -> dict[str, Any]:
    """The catalog's configs are architecture subsets. Where one has no `sliding_window`, vramcalc reads full
    attention (vramcalc/sources/hf_config.py window) while transformers would fill its class default
    (MistralConfig: 4096): vLLM is handed the null explicitly, so both read the same model. Other families
    either need the key (Gemma) or gate it by a flag (Qwen2's use_sliding_window)."""
    if config.get("model_type") == "mistral" and "sliding_window" not in config:
        return dict(config, sliding_window=None)
    return config


def _run(entry: dict[str, Any], config: dict[str, Any], tp: int, kv_dtype: str, memories: list[float],
         max_len: int | None, with_weights: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = _config(d, tp, kv_dtype, max_len)
        model, backends = meta_engine(cfg, tp)
        dtype = cfg.model_config.dtype
        specs = _specs(cfg)
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        buffers = sum(b.numel() * b.element_size() for b in model.buffers())
        row: dict[str, Any] = {
            "model": entry["repo_id"], "tp": tp, "kv_cache_dtype": kv_dtype, "dtype": str(dtype).replace("torch.", ""),
            "max_model_len": cfg.model_config.max_model_len, "max_num_batched_tokens":
                cfg.scheduler_config.max_num_batched_tokens, "attention_backends": backends,
            "cache_block_size": cfg.cache_config.block_size,
            "max_in_flight_tokens": getattr(cfg, "max_in_flight_tokens", None),
            "async_scheduling": cfg.scheduler_config.async_scheduling,
            "hybrid_kv_cache_manager": not cfg.scheduler_config.disable_hybrid_kv_cache_manager,
            "disable_sliding_window": bool(getattr(cfg.model_config, "disable_sliding_window", False)),
            # VLLM_MLA_DISABLE=1 in the environment (vllm/envs.py; ModelConfig.use_mla reads it)
            "use_mla": bool(cfg.model_config.use_mla),
            "engine_args": json.loads(os.environ.get("VLLM_ORACLE_ENGINE_ARGS") or "{}"),
            "mamba_block_size": getattr(cfg.cache_config, "mamba_block_size", None),
            "mamba_cache_mode": getattr(cfg.cache_config, "mamba_cache_mode", None),
            "enable_prefix_caching": getattr(cfg.cache_config, "enable_prefix_caching", None),
            "kv_cache_dtype_skip_layers": list(getattr(cfg.cache_config, "kv_cache_dtype_skip_layers", None) or []),
            "weights_bytes_rank0": weights if with_weights else None,
            "buffer_bytes_rank0": buffers if with_weights else None,
            "layers": {}, "plans": []}
        for name, spec in specs.items():
            row["layers"][name] = _layer_row(spec)
        for gib in memories:
            row["plans"].append(_plan(cfg, specs, int(gib * GIB)))
        del model
        return row


def meta_engine(cfg: Any, tp: int) -> tuple[Any, str]:
    """The model of an engine config as a CUDA worker builds it, on the meta device: the TP group of fake ranks, the
    platform answering as CUDA, initialize_model, the attention backends it picked, and (after 0.11) the block size the
    base Platform.update_block_size_for_backend sets for them (CudaPlatform inherits it). (model, backends)."""
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.platforms.interface import Platform

    _init_group(tp, cfg)
    cuda_like(cfg)
    with meta_models(cfg):
        model = initialize_model(vllm_config=cfg)
    backends = _cuda_backends(cfg)
    if not _legacy():
        cfg.cache_config.mamba_page_size_padded = None
        Platform.update_block_size_for_backend(cfg)
    return model, backends


def print_case_row(run: Any) -> None:
    """`--case N` of a one-process-per-case oracle (a fresh interpreter for each case's environment variables): the
    case's row on stdout, or vLLM's refusal as its message."""
    try:
        row = run()
    except Exception as e:  # what vLLM refuses, as its message
        if os.environ.get("VLLM_ORACLE_DEBUG"):
            raise
        row = {"error": refusal_text(e, 400)}
    print("ROW " + json.dumps(row))


def case_in_subprocess(script: str, out: str, i: int, env_set: dict[str, str]) -> dict[str, Any]:
    """Case i of `script` run as `--case i` in its own interpreter with env_set added: its row (print_case_row)."""
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_LOGGING_LEVEL="ERROR", **env_set)
    p = subprocess.run([sys.executable, script, "--out", out, "--case", str(i)], env=env, capture_output=True,
                       text=True)
    lines = [x for x in p.stdout.splitlines() if x.startswith("ROW ")]
    return json.loads(lines[-1][4:]) if lines else {"error": (p.stderr.strip().splitlines() or ["?"])[-1][:400]}


def flag_case_config(stem: str, args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A flag oracle's case: the catalog entry and its config as vramcalc reads it, unquantized (the CPU build
    cannot pick CUDA's quantized kernels), with the case's EngineArgs fields set for the next engine config."""
    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    config = {k: v for k, v in _as_read(_catalog_config(entry["repo_id"])).items() if k != "quantization_config"}
    EXTRA_ARGS.clear()
    EXTRA_ARGS.update(copy.deepcopy(args))
    return entry, config


def run_flag_cases(doc: dict[str, Any], out: str, cases: list[tuple[str, int, dict[str, Any]]], tp: int,
                   one: Any, refused: str = "unsupported", skip_refused: bool = False) -> None:
    """A flag oracle's cases of TP `tp` (catalog stem, TP, EngineArgs fields), resumed from what `out` holds:
    each case not yet recorded goes through record_case with one(stem, tp, args). skip_refused: cases vLLM refused
    before are not tried again either."""
    if os.path.exists(out):
        old = json.load(open(out))
        doc["cases"], doc[refused] = old["cases"], old[refused]
    done = {json.dumps([c["model"], c["tp"], c["engine_args"]], sort_keys=True)
            for c in doc["cases"] + (doc[refused] if skip_refused else [])}
    for stem, case_tp, args in cases:
        repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
        if case_tp != tp or json.dumps([repo, case_tp, args], sort_keys=True) in done:
            continue
        record_case(doc, out, refused, {"model": repo, "tp": case_tp, "engine_args": args},
                    lambda: one(stem, case_tp, args), f"{stem} {case_tp} {args}")


def serve_parser() -> Any:
    """`vllm serve`'s engine arguments as the release parses them (EngineArgs.add_cli_args on its
    FlexibleArgumentParser), a parse error raised as SystemExit("vllm serve: error: ...") rather than exiting."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    p = FlexibleArgumentParser(prog="vllm serve")

    def error(msg: str) -> None:
        raise SystemExit(f"vllm serve: error: {msg}")

    p.error = error  # type: ignore[method-assign]
    EngineArgs.add_cli_args(p)
    return p


def refusal_text(e: BaseException, limit: int = 600) -> str:
    """What vLLM raised, in its words: the exception's type and message, whitespace folded, cut at `limit`."""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:limit]}"


def record_case(doc: dict[str, Any], out: str, refused: str, key: dict[str, Any], run: Any, label: str) -> Any:
    """One case of a flag oracle: run() with vLLM's prints silenced, its row appended to doc["cases"]; what vLLM
    refuses, in its words, to doc[refused] with the case's key; the file rewritten after each case, so a long run
    keeps what it did. Returns the row, or None where vLLM refused."""
    row = None
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            row = run()
        doc["cases"].append(row)
        print(label, "ok", file=sys.stderr)
    except Exception as e:  # vLLM's refusal, in its words
        if os.environ.get("VLLM_ORACLE_DEBUG"):
            raise
        msg = refusal_text(e)
        doc[refused].append({**key, "error": msg})
        print(label, msg, file=sys.stderr)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    return row


def setup() -> None:
    """Make the wheel plan as the CUDA build does on this CPU machine (see the module docstring)."""
    _torchvision_stub()
    # releases up to 0.2x pick the CPU platform only for a "+cpu" build (platforms/__init__.py
    # cpu_platform_plugin, vllm_version_matches_substr): the CUDA wheel is told it is one. From 0.25 the
    # platform is resolved while `import vllm` runs (vllm/env_override.py -> utils/torch_utils.py PIN_MEMORY),
    # so the distribution's version is answered with "+cpu" until then
    import importlib.metadata as md

    md_version = md.version

    def cpu_build_version(name: str) -> str:
        v = md_version(name)
        return v + "+cpu" if name == "vllm" and "cpu" not in v else v

    md.version = cpu_build_version  # type: ignore[assignment]
    try:
        import vllm.platforms as platforms

        if hasattr(platforms, "vllm_version_matches_substr"):
            platforms.vllm_version_matches_substr = lambda s: s == "cpu"  # type: ignore[attr-defined]
        _ = platforms.current_platform
    finally:
        md.version = md_version  # type: ignore[assignment]
    import vllm

    with contextlib.suppress(Exception):
        import vllm.platforms

        vllm.platforms.current_platform.import_kernels()
    _custom_op_stub()
    # 0.34 refuses an x86 CPU host without triton-cpu (platforms/cpu.py CpuPlatform.check_and_update_config reads
    # vllm.triton_utils.HAS_TRITON when it runs); the oracle runs no kernel, so that check alone is told Triton is
    # there (set for good, the model modules that read it at import would reach for the Triton placeholder)
    import vllm.platforms.cpu as cpu_platform
    import vllm.triton_utils as triton_utils

    if "triton-cpu" in open(cpu_platform.__file__).read():
        check = cpu_platform.CpuPlatform.check_and_update_config.__func__  # type: ignore[attr-defined]

        def with_triton(cls: Any, vllm_config: Any) -> Any:
            had = triton_utils.HAS_TRITON
            triton_utils.HAS_TRITON = True  # type: ignore[attr-defined]
            try:
                return check(cls, vllm_config)
            finally:
                triton_utils.HAS_TRITON = had  # type: ignore[attr-defined]

        cpu_platform.CpuPlatform.check_and_update_config = classmethod(with_triton)  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*", help="catalog file stems (default: all)")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--kv-dtypes", nargs="*", default=["auto", "fp8"])
    ap.add_argument("--memory-gib", nargs="*", type=float, default=[2.0, 16.0, 64.0])
    ap.add_argument("--max-model-len", type=int, default=None)
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    setup()
    import vllm

    paths = sorted(glob.glob(os.path.join(MODELS, "*.json")))
    if a.models:
        paths = [p for p in paths if os.path.basename(p)[:-5] in a.models]
    doc: dict[str, Any] = {"cases": [], "unsupported": []}
    if os.path.exists(a.out):
        doc = json.load(open(a.out))
    try:
        import vllm.v1.core.kv_cache_planning  # noqa: F401
        planning = ("kv_cache_planning.get_global_kv_cache_groups / get_kv_cache_configs / estimate_max_model_len, "
                    "kv_cache_utils.get_kv_cache_capacity")
    except ImportError:
        planning = ("kv_cache_utils.get_kv_cache_groups / get_kv_cache_configs / estimate_max_model_len / "
                    "get_max_concurrency_for_kv_cache_config, tokens as _report_kv_cache_config logs them")
    specs_by = ("Attention.get_kv_cache_spec with FlashAttention / Triton MLA as the CUDA backends, Platform."
                "update_block_size_for_backend")
    if _legacy():
        specs_by = ("GPUModelRunner.get_kv_cache_spec, the block size CudaPlatform and HybridAttentionMambaModelConfig "
                    "give (the CPU platform's block-size and fp8 checks run on those values), V1 for sliding windows "
                    "as on CUDA")
    doc.update(release=vllm.__version__, produced_by=(
        f"vLLM {vllm.__version__} wheel, EngineArgs.create_engine_config, the model class built on the meta "
        "device (initialize_model under set_current_vllm_config, TP group of fake ranks), "
        f"{specs_by}, {planning}; run on CPU with VLLM_TARGET_DEVICE=cpu "
        "(tools/vllm_oracle.py). Each catalog config is completed as vramcalc reads it (architecture_from; the "
        "causal-LM class transformers registers where it names none); the CPU attention backend is let take fp8 "
        "KV on any host (the oracle runs no kernel). A Mistral config without sliding_window is handed to vLLM with it null (full attention, "
        "as vramcalc reads it); a quantized checkpoint whose kernels the CPU build cannot pick is built "
        "unquantized with the KV dtype its quantization config gives `auto` (kv_cache_dtype_built)"),
        memory_note="memory_bytes is the KV budget handed to get_kv_cache_configs for every rank")
    flags = [k + "=1" for k in ("VLLM_ORACLE_DISABLE_SLIDING_WINDOW", "VLLM_MLA_DISABLE") if os.environ.get(k)]
    for k in ("VLLM_ORACLE_SUPPORTED_LAYOUTS", "VLLM_KV_CACHE_LAYOUT"):
        if os.environ.get(k):
            flags.append(k + "=" + os.environ[k])
    if os.environ.get("VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS"):
        flags.append("VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS=" + os.environ["VLLM_ORACLE_KV_CACHE_DTYPE_SKIP_LAYERS"]
                     + " (EngineArgs kv_cache_dtype_skip_layers)")
    if os.environ.get("VLLM_ORACLE_ENGINE_ARGS"):
        flags.append("VLLM_ORACLE_ENGINE_ARGS='" + os.environ["VLLM_ORACLE_ENGINE_ARGS"] + "' (EngineArgs fields)")
    if a.max_model_len:
        flags.append(f"--max-model-len {a.max_model_len}")
    if flags:  # what the run was given besides the catalog configs
        doc["produced_by"] += "; run with " + ", ".join(flags)
    done = {(c["model"], c["tp"], c["kv_cache_dtype"]) for c in doc["cases"]}
    for p in paths:
        repo = json.load(open(p))["repo_id"]
        for kv in a.kv_dtypes:
            if (repo, a.tp, kv) in done:
                continue
            t = time.time()
            try:
                with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                    doc["cases"].append(run_one(p, a.tp, kv, a.memory_gib, a.max_model_len))
                print(f"{repo} tp{a.tp} {kv}: {time.time() - t:.1f}s", file=sys.stderr)
            except Exception as e:  # what vLLM itself refuses to build, recorded as its message
                if os.environ.get("VLLM_ORACLE_DEBUG"):
                    raise
                lines = str(e).splitlines()
                # pydantic puts the validator's own message on the line after "1 validation error for ..."
                first = next((x.strip() for x in lines[1:] if x.strip().startswith("Value error,")), lines[0]) \
                    if lines and "validation error" in lines[0] else (lines[0] if lines else "")
                msg = f"{type(e).__name__}: {first.split(' [type=')[0][:300]}"
                doc["unsupported"] = [u for u in doc["unsupported"] if (u["model"], u["tp"], u["kv_cache_dtype"])
                                      != (repo, a.tp, kv)]
                doc["unsupported"].append({"model": repo, "tp": a.tp, "kv_cache_dtype": kv, "error": msg})
                print(f"{repo} tp{a.tp} {kv}: {msg}", file=sys.stderr)
            with open(a.out, "w") as f:
                json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
