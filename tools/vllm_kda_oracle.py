"""vLLM's own answer to each --kda-prefill-backend / --kda-decode-backend choice: EngineArgs.create_engine_config
with the choice, run on the CPU build (VLLM_TARGET_DEVICE=cpu), whose platform is neither CUDA nor ROCm, so both of
its platform refusals (flashkda off CUDA, fused off ROCm: vllm/engine/arg_utils.py, 0.33.0) answer in vLLM's words.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.33.0/bin/python tools/vllm_kda_oracle.py \
        --out tests/data/vllm_kda_oracle_v0.33.0.json
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import vllm_oracle as vo  # noqa: E402

MODEL = "Qwen/Qwen3-8B"  # a model without KDA layers: the flag is checked before any model is built
PREFILL = ["auto", "triton", "flashkda", "flashinfer", "fused"]  # arg_utils.py --kda-prefill-backend choices
DECODE = ["auto", "native", "flashinfer", "triton"]  # arg_utils.py --kda-decode-backend choices


def _one(config_dir: str, ea: dict[str, Any]) -> dict[str, Any]:
    vo.EXTRA_ARGS.clear()
    vo.EXTRA_ARGS.update(ea)
    row: dict[str, Any] = {"engine_args": ea}
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            cfg = vo._config(config_dir, 1, "auto", 8192)
        row["additional_config"] = {k: v for k, v in (cfg.additional_config or {}).items() if k.startswith("kda_")}
    except Exception as e:  # what vLLM itself refuses, in its words
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    vo.setup()
    import vllm
    from vllm.platforms import current_platform

    cases = [{"kda_prefill_backend": b} for b in PREFILL] + [{"kda_decode_backend": b} for b in DECODE]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(vo._as_read(vo._catalog_config(MODEL)), f)
        rows = [dict(_one(d, ea), model=MODEL) for ea in cases]
    doc = {"release": vllm.__version__, "platform": {"is_cuda": current_platform.is_cuda(),
                                                     "is_rocm": current_platform.is_rocm()},
           "cases": rows,
           "produced_by": (f"vLLM {vllm.__version__} wheel on CPU (VLLM_TARGET_DEVICE=cpu), tools/vllm_kda_oracle.py: "
                           "EngineArgs(model=<the catalog config>, kda_prefill_backend / kda_decode_backend=<choice>)"
                           ".create_engine_config() through tools/vllm_oracle.py _config; error is what it raised, "
                           "additional_config the kda_* keys it passed on")}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    for r in rows:
        print(r, file=sys.stderr)


if __name__ == "__main__":
    main()
