"""FlashInfer's attention workspace (VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE), sized by vLLM's own code on a CPU
machine: tests/data/vllm_flashinfer_workspace_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_flashinfer_workspace_oracle.py \
        --out tests/data/vllm_flashinfer_workspace_oracle_v0.33.0.json

Per case (model, TP, max_num_batched_tokens, the variable set or not): EngineArgs.create_engine_config as
`vllm serve` parses the flags (tools/vllm_oracle.py _config; no model is built), then
vllm/v1/attention/backends/flashinfer.py FlashInferMetadataBuilder._get_workspace_buffer on the three figures
the builder's __init__ takes from that config (scheduler_config.max_num_batched_tokens, the per-rank query heads
ModelConfig.get_num_attention_heads(parallel_config), the KV spec's head size ModelConfig.get_head_size()), its
buffer put on the meta device: the bytes it allocates. And _get_trtllm_workspace_buffer's bytes (the TRT-LLM
kernels' own buffer, device "cuda" answered with meta), with vllm/utils/flashinfer.py
supports_trtllm_attention per compute capability (the capability answered as the case's; the flashinfer-cubin
kernels taken as installed: VLLM_HAS_FLASHINFER_CUBIN=1).

The flashinfer package is not on the CPU machine: its modules are stood in for by empty classes, which the
size functions never call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import types
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

MIB = 2**20
ENV = "VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE"
# (catalog stem, tp, max_num_batched_tokens, VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE or None)
CASES: list[tuple[str, int, int, int | None]] = [
    ("Qwen__Qwen3-8B", 1, 2048, None), ("Qwen__Qwen3-8B", 1, 8192, None), ("Qwen__Qwen3-8B", 1, 16384, None),
    ("Qwen__Qwen3-8B", 2, 8192, None), ("Qwen__Qwen3-8B", 1, 2048, 256 * MIB), ("Qwen__Qwen3-8B", 1, 2048, 64 * MIB),
    ("Qwen__Qwen3-8B", 1, 8192, 1024 * MIB), ("Qwen__Qwen3-8B", 1, 8192, 128 * MIB),
    ("meta-llama__Llama-3.1-70B-Instruct", 4, 8192, None), ("meta-llama__Llama-3.1-70B-Instruct", 1, 8192, None),
    ("meta-llama__Llama-3.1-8B-Instruct", 1, 4096, 512 * MIB), ("google__gemma-3-27b-it", 1, 8192, None),
    ("Qwen__Qwen3.5-27B", 1, 8192, None), ("Qwen__Qwen3-32B", 2, 16384, 300 * MIB),
]
CAPS = [(8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (10, 3), (12, 0), (12, 1)]


class _Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """flashinfer and its submodules as modules whose every name is an empty class."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name == "flashinfer" or name.startswith("flashinfer."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> Any:
        class _Mod(types.ModuleType):
            def __getattr__(self, n: str) -> Any:
                if n.startswith("__"):
                    raise AttributeError(n)
                return type(n, (), {"__init__": lambda self, *a, **k: None})
        return _Mod(spec.name)

    def exec_module(self, module: Any) -> None:
        module.__path__ = []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    sys.meta_path.insert(0, _Stub())
    # the CUDA kernels' library, which needs libcuda; the size functions do not use it
    sys.modules.setdefault("vllm._C_stable_libtorch", types.ModuleType("vllm._C_stable_libtorch"))
    import torch
    import vllm
    import vllm.utils.flashinfer as fu
    import vllm.v1.attention.backends.flashinfer as fi
    from vllm.platforms.interface import DeviceCapability

    doc: dict[str, Any] = {"release": vllm.__version__, "builder": [], "trtllm": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: FlashInferMetadataBuilder._get_workspace_buffer and "
        "_get_trtllm_workspace_buffer on the meta device, with each case's VllmConfig (EngineArgs."
        "create_engine_config, no model built) and variable; supports_trtllm_attention per compute capability "
        "with the flashinfer-cubin kernels taken as installed; run on CPU: VLLM_TARGET_DEVICE=cpu python "
        "tools/vllm_flashinfer_workspace_oracle.py")}
    zeros = torch.zeros

    def on_meta(*args: Any, **kw: Any) -> Any:
        kw["device"] = "meta"
        return zeros(*args, **kw)

    for stem, tp, mnbt, env in CASES:
        entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
        config = vo._as_read(vo._catalog_config(entry["repo_id"]))
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(max_num_batched_tokens=mnbt, max_model_len=4096)
        with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(config, f)
            cfg = vo._config(d, tp, "auto", 4096)
        os.environ.pop(ENV, None)
        if env is not None:
            os.environ[ENV] = str(env)
        me = types.SimpleNamespace(
            _workspace_buffer=None, max_num_batched_tokens=cfg.scheduler_config.max_num_batched_tokens,
            num_qo_heads=cfg.model_config.get_num_attention_heads(cfg.parallel_config),
            head_dim=cfg.model_config.get_head_size(), device="meta")
        buf = fi.FlashInferMetadataBuilder._get_workspace_buffer(me)
        fi.trtllm_workspace_buffer = None
        fi.torch.zeros = on_meta  # type: ignore[assignment]
        try:
            trt = fi._get_trtllm_workspace_buffer()
        finally:
            fi.torch.zeros = zeros  # type: ignore[assignment]
        row = {"model": entry["repo_id"], "tp": tp, "max_num_batched_tokens": me.max_num_batched_tokens,
               "num_qo_heads": me.num_qo_heads, "head_dim": me.head_dim, "env": env,
               "workspace_bytes": buf.nbytes, "trtllm_workspace_bytes": trt.nbytes}
        doc["builder"].append(row)
        print(row, file=sys.stderr)
    os.environ.pop(ENV, None)
    os.environ["VLLM_HAS_FLASHINFER_CUBIN"] = "1"
    for fn in (fu.has_flashinfer_cubin, fu.has_nvidia_artifactory):  # functools.cache'd
        getattr(fn, "cache_clear", lambda: None)()
    plat = fu.current_platform
    for cc in CAPS:
        type(plat).get_device_capability = classmethod(lambda cls, device_id=0, cc=cc: DeviceCapability(*cc))
        fu.supports_trtllm_attention.cache_clear()
        doc["trtllm"].append({"compute_capability": f"{cc[0]}.{cc[1]}",
                              "decode": fu.supports_trtllm_attention(is_prefill=False),
                              "prefill": fu.supports_trtllm_attention(is_prefill=True)})
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
