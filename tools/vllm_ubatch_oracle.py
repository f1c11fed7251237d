"""--enable-dbo / --ubatch-size, judged by vLLM's own config on a CPU machine: tests/data/vllm_ubatch_oracle_v0.33.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_ubatch_oracle.py \
        --out tests/data/vllm_ubatch_oracle_v0.33.0.json

Per case: EngineArgs.create_engine_config with the case's fields as `vllm serve` parses the flags (tools/vllm_oracle.py
_config; no model is built): whether micro-batching is on (ParallelConfig.use_ubatching, num_ubatches), or vLLM's
refusal in its words (the CPU platform's turning DBO off undone, as CUDA keeps it; VllmConfig.__post_init__: micro-batching takes only the DeepEP / NIXL EP all-to-all backends on
CUDA; ParallelConfig: the DBO thresholds at least the micro-batch count).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

CASES: list[tuple[str, dict[str, Any]]] = [
    ("Qwen__Qwen3-30B-A3B", {"enable_dbo": True}),
    ("Qwen__Qwen3-30B-A3B", {"ubatch_size": 2}),
    ("Qwen__Qwen3-30B-A3B", {"ubatch_size": 1}),
    ("Qwen__Qwen3-30B-A3B", {"ubatch_size": 0}),
    ("Qwen__Qwen3-30B-A3B", {"enable_dbo": True, "all2all_backend": "naive"}),
    ("Qwen__Qwen3-30B-A3B", {"enable_dbo": True, "all2all_backend": "deepep_low_latency"}),
    ("Qwen__Qwen3-30B-A3B", {"ubatch_size": 4, "all2all_backend": "deepep_high_throughput"}),
    ("Qwen__Qwen3-30B-A3B", {"enable_dbo": True, "all2all_backend": "deepep_low_latency",
                             "dbo_decode_token_threshold": 1}),
    ("Qwen__Qwen3-8B", {"enable_dbo": True}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.platforms.cpu import CpuPlatform

    # the CPU platform turns DBO off (platforms/cpu.py check_and_update_config); CUDA's keeps it: put it back
    check = CpuPlatform.check_and_update_config.__func__  # type: ignore[attr-defined]

    def keep_dbo(cls: Any, vllm_config: Any) -> None:
        dbo = vllm_config.parallel_config.enable_dbo
        check(cls, vllm_config)
        vllm_config.parallel_config.enable_dbo = dbo

    CpuPlatform.check_and_update_config = classmethod(keep_dbo)  # type: ignore[method-assign]

    doc: dict[str, Any] = {"release": vllm.__version__, "cases": [], "unsupported": [], "produced_by": (
        f"vLLM {vllm.__version__} wheel: EngineArgs.create_engine_config with each case's fields (no model built); "
        "run on CPU: VLLM_TARGET_DEVICE=cpu python tools/vllm_ubatch_oracle.py")}
    for stem, args in CASES:
        entry = json.load(open(os.path.join(vo.MODELS, stem + ".json")))
        config = vo._as_read(vo._catalog_config(entry["repo_id"]))
        vo.EXTRA_ARGS.clear()
        vo.EXTRA_ARGS.update(args)
        row: dict[str, Any] = {"model": entry["repo_id"], "engine_args": args}
        try:
            with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                with open(os.path.join(d, "config.json"), "w") as f:
                    json.dump(config, f)
                cfg = vo._config(d, 1, "auto", None)
            row.update(use_ubatching=cfg.parallel_config.use_ubatching, num_ubatches=cfg.parallel_config.num_ubatches)
            doc["cases"].append(row)
        except Exception as e:  # vLLM's refusal, in its words
            row["error"] = vo.refusal_text(e, 500)
            doc["unsupported"].append(row)
        print(row, file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
