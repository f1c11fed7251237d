"""--cpu-offload-gb with --cpu-offload-params, run through vLLM's own offloader on a CPU machine:
tests/data/vllm_cpu_offload_oracle_v0.33.0.json.

    for tp in 1 2; do VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_cpu_offload_oracle.py \
        --tp $tp --out tests/data/vllm_cpu_offload_oracle_v0.33.0.json; done

Per case: the config as `vllm serve` builds it (EngineArgs.create_engine_config, the case's fields set), the offloader
vLLM's model runner installs before it loads the model (vllm/model_executor/offloader/base.py create_offloader,
set_offloader: UVAOffloader with cpu_offload_gb and cpu_offload_params), and the model class built on the meta
device under a TP group of fake ranks (tools/vllm_oracle.py), its decoder layers wrapped by make_layers as vLLM wraps
them (UVAOffloader.wrap_modules, _maybe_offload_to_cpu choosing each parameter by its name). On the meta device a
parameter's copy to the host is its meta self (its bytes are its shape's), and the accelerator view of it is the
copy: the choice and the count (`cpu_offload_bytes`) are vLLM's own. Recorded beside it: the bytes of every
parameter under an `experts` segment, and all the weights of rank 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

GIB = 2**30
# (catalog file stem, TP, EngineArgs fields)
CASES: list[tuple[str, int, dict[str, Any]]] = [
    ("Qwen__Qwen3-30B-A3B", 1, {"cpu_offload_gb": 2, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 1, {"cpu_offload_gb": 1000, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 1, {"cpu_offload_gb": 2}),
    ("Qwen__Qwen3-30B-A3B", 2, {"cpu_offload_gb": 3, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-30B-A3B", 2, {"cpu_offload_gb": 1000, "cpu_offload_params": ["experts"]}),
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 2, {"cpu_offload_gb": 10, "cpu_offload_params": ["experts"]}),
    ("mistralai__Mixtral-8x7B-Instruct-v0.1", 2, {"cpu_offload_gb": 1000, "cpu_offload_params": ["experts"]}),
    # (no MXFP4 / quantized checkpoint: the CPU build has no kernel for them and builds them unquantized)
    ("Qwen__Qwen3-8B", 1, {"cpu_offload_gb": 1000, "cpu_offload_params": ["experts"]}),
    ("Qwen__Qwen3-8B", 1, {"cpu_offload_params": ["experts"]}),
]


def _meta_copies() -> None:
    """A meta parameter's copy to the host is itself; UVA's accelerator view of it is the copy; nothing pinned."""
    import torch
    from vllm.model_executor.offloader import uva

    to = torch.Tensor.to

    def meta_to(self: Any, *a: Any, **k: Any) -> Any:
        if self.is_meta:
            return self
        return to(self, *a, **k)

    torch.Tensor.to = meta_to  # type: ignore[method-assign]
    uva.get_accelerator_view_from_cpu_tensor = lambda t: t
    uva.should_pin_memory = lambda: False


@contextlib.contextmanager
def offloaded_model(config: dict[str, Any], tp: int, init: Any = None) -> Iterator[tuple[Any, Any, Any]]:
    """(the engine config, the offloader, the model) for a catalog config: the offloader create_offloader makes from
    the case's offload config installed as the model runner installs it, the model built on the meta device under a
    TP group of fake ranks (`init(cfg)` for another group), the default offloader put back after."""
    from vllm.model_executor.model_loader.utils import initialize_model
    from vllm.model_executor.offloader import create_offloader, set_offloader

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        cfg = vo._config(d, tp, "auto", None)
        (init or (lambda c: vo._init_group(tp, c)))(cfg)
        vo.cuda_like(cfg)
        off = create_offloader(cfg.offload_config)
        set_offloader(off)
        try:
            with vo.meta_models(cfg):
                yield cfg, off, initialize_model(vllm_config=cfg)
        finally:
            set_offloader(create_offloader(type(cfg.offload_config)()))


def _one(stem: str, tp: int, args: dict[str, Any]) -> dict[str, Any]:
    entry, config = vo.flag_case_config(stem, args)
    with offloaded_model(config, tp) as (cfg, off, model):
        params = list(model.named_parameters())
        return {"model": entry["repo_id"], "tp": tp, "engine_args": args, "dtype": str(cfg.model_config.dtype),
                "offloader": type(off).__name__,
                "cpu_offload_bytes": int(getattr(off, "cpu_offload_bytes", 0)),
                "experts_bytes": sum(p.numel() * p.element_size() for n, p in params if ".experts." in f".{n}."),
                "largest_experts_tensor_bytes": max([p.numel() * p.element_size() for n, p in params
                                                     if ".experts." in f".{n}."] or [0]),
                "weights_bytes_rank0": sum(p.numel() * p.element_size() for _, p in params)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1, help="the cases at this TP (the fake group is made once a process)")
    ap.add_argument("--out", required=True, help="JSON file to write (merged with what it holds)")
    a = ap.parse_args()
    vo.setup()
    _meta_copies()
    import vllm

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "unsupported": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's fields as `vllm serve` "
        "parses --cpu-offload-gb / --cpu-offload-params, create_offloader / set_offloader as the model runner calls "
        "them, the model built on the meta device under a TP group of fake ranks (tools/vllm_oracle.py), "
        "UVAOffloader's own count; run on CPU: VLLM_TARGET_DEVICE=cpu python tools/vllm_cpu_offload_oracle.py --tp N")}
    vo.run_flag_cases(doc, a.out, CASES, a.tp, _one)


if __name__ == "__main__":
    main()
