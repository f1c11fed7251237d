"""vLLM's own CUDA-graph capture sizes, run on a CPU machine: the oracle for vramcalc's capture counts
(vramcalc/vllm/engine.py cudagraph_capture_sizes).

Runs in the vllm 0.30.0 venv (the PyPI wheel, torch CPU), with tools/vllm_oracle.py's torchvision stand-in:

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.30.0/bin/python tools/vllm_cudagraph_sizes_oracle.py \
        --out tests/data/vllm_cudagraph_sizes_oracle.json

For each case it builds a real CompilationConfig as EngineArgs.create_engine_config does for --cudagraph-capture-sizes
and --max-cudagraph-capture-size (vllm/engine/arg_utils.py: each sets the CompilationConfig field of its name), then
calls VllmConfig._set_cudagraph_sizes (vllm/config/vllm.py) unbound on a stand-in config carrying the scheduler's
max_num_seqs / max_num_batched_tokens, the performance mode and the decode query length (1: no speculative decoding;
the data-centre Blackwell ceiling off, as on this CPU platform), and records the sizes it writes back, or the
ValueError it raises. The FULL decode sizes are those vllm/v1/cudagraph_dispatcher.py keeps for uniform decode:
query length <= size <= query length x max_num_seqs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

CASES: list[dict[str, Any]] = [
    {"max_num_seqs": 256, "max_num_batched_tokens": 2048},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192},
    {"max_num_seqs": 64, "max_num_batched_tokens": 2048},
    {"max_num_seqs": 1024, "max_num_batched_tokens": 16384},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "max_cudagraph_capture_size": 128},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "max_cudagraph_capture_size": 100},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "max_cudagraph_capture_size": 1024},
    {"max_num_seqs": 16, "max_num_batched_tokens": 8192, "max_cudagraph_capture_size": 2048},
    {"max_num_seqs": 256, "max_num_batched_tokens": 300, "max_cudagraph_capture_size": 1024},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "max_cudagraph_capture_size": 6},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "cudagraph_capture_sizes": [1, 2, 4, 8, 16, 32]},
    {"max_num_seqs": 8, "max_num_batched_tokens": 8192, "cudagraph_capture_sizes": [32, 1, 8, 8, 4, 2, 1]},
    {"max_num_seqs": 256, "max_num_batched_tokens": 2048, "cudagraph_capture_sizes": [1, 512, 2048, 4096, 8192]},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "cudagraph_capture_sizes": [1, 2, 4, 8],
     "max_cudagraph_capture_size": 8},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "cudagraph_capture_sizes": [1, 2, 4, 8],
     "max_cudagraph_capture_size": 16},
    {"max_num_seqs": 256, "max_num_batched_tokens": 2048, "cudagraph_capture_sizes": [1, 4096],
     "max_cudagraph_capture_size": 4096},
    {"max_num_seqs": 256, "max_num_batched_tokens": 2048, "performance_mode": "interactivity"},
    {"max_num_seqs": 8, "max_num_batched_tokens": 2048, "performance_mode": "interactivity"},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "performance_mode": "interactivity",
     "max_cudagraph_capture_size": 20},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "performance_mode": "interactivity",
     "cudagraph_capture_sizes": [1, 64]},
    {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "performance_mode": "throughput"},
]


def _sizes(case: dict[str, Any]) -> dict[str, Any]:
    from vllm.config.compilation import CompilationConfig
    from vllm.config.vllm import VllmConfig

    cc = CompilationConfig(**{k: case[k] for k in ("cudagraph_capture_sizes", "max_cudagraph_capture_size")
                              if k in case})
    cfg = SimpleNamespace(
        model_config=SimpleNamespace(enforce_eager=False), compilation_config=cc,
        scheduler_config=SimpleNamespace(max_num_seqs=case["max_num_seqs"],
                                         max_num_batched_tokens=case["max_num_batched_tokens"]),
        parallel_config=SimpleNamespace(tensor_parallel_size=1),
        performance_mode=case.get("performance_mode", "balanced"),
        uniform_decode_query_len=1, speculative_config=None, num_speculative_tokens=0)
    try:
        VllmConfig._set_cudagraph_sizes(cfg)  # type: ignore[arg-type]
    except ValueError as e:
        return {"error": str(e)}
    sizes = list(cc.cudagraph_capture_sizes or [])
    full = [x for x in sizes if 1 <= x <= case["max_num_seqs"]]
    return {"piecewise": len(sizes), "full_decode": len(full), "sizes": sizes,
            "max_cudagraph_capture_size": cc.max_cudagraph_capture_size}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    vo._torchvision_stub()
    import vllm

    out = {"_source": "vLLM " + vllm.__version__ + " vllm/config/vllm.py VllmConfig._set_cudagraph_sizes run on a "
           "real CompilationConfig (tools/vllm_cudagraph_sizes_oracle.py); full_decode: the sizes "
           "vllm/v1/cudagraph_dispatcher.py keeps for FULL uniform decode (1 <= size <= max_num_seqs)",
           "release": vllm.__version__,
           "cases": [{"input": c, "vllm": _sizes(c)} for c in CASES]}
    with open(args.out, "w") as f:
        f.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
