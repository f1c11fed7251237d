"""MiniMax-M3's ROCm decode paths as vLLM v0.34.0 sizes them, on a CPU machine:
tests/data/vllm_minimax_m3_mono_oracle_v0.34.0.json.

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_minimax_m3_mono_oracle.py \
        --out tests/data/vllm_minimax_m3_mono_oracle_v0.34.0.json

The ROCm modules are imported as tools/vllm_minimax_m3_oracle.py _rocm_class does (AITER / FlyDSL stood in by empty
modules: nothing here compiles or runs a kernel), then vLLM's own layout functions and constants are read:
- specialized_decode (--monokernel, vllm/models/minimax_m3/amd/specialized_decode/): the deployment it accepts
  (runtime/spec.py DecodeConfig), the per-rank peer buffer (mono/ffn.py peer_bytes, allocated by
  runtime/executor.py FfnExecutor through the uncached IPC heap) and the scratch FfnRunner allocates for each row
  count (mono/runner.py: scratch_bytes per width, the epoch words, the fault-injection pair);
- mono (VLLM_ROCM_MINIMAX_M3_MONO=1, vllm/models/minimax_m3/amd/mono/): the peer buffer (layout.py sym_layout),
  the two kernels' scratch (kernels/pre_attn.py SCRATCH_BYTES, layout.py SCRATCH_BYTES), and the shapes of the
  per-layer converted copies runner.py / weights.py build (config.py MAX_QKV_ROWS, O_K, HIDDEN, INTER).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))


def run() -> dict[str, Any]:
    import vllm_minimax_m3_oracle as m

    m._prepare()
    m._rocm_class()
    import vllm
    from vllm.models.minimax_m3.amd.mono import config as mc
    from vllm.models.minimax_m3.amd.mono import layout
    from vllm.models.minimax_m3.amd.mono.kernels import pre_attn
    from vllm.models.minimax_m3.amd.specialized_decode.mono import ffn
    from vllm.models.minimax_m3.amd.specialized_decode.runtime.spec import DECODE_CONFIG as dc

    widths = list(dc.widths)
    scratch = {str(s): ffn.scratch_bytes(s) for s in widths}
    sd_total = ffn.peer_bytes(dc.tp_size) + sum(scratch.values()) + 4 * ffn.EPOCH_WORDS + 4 * 2
    return {
        "release": vllm.__version__,
        "produced_by": "tools/vllm_minimax_m3_mono_oracle.py (VLLM_TARGET_DEVICE=cpu, vLLM's ROCm modules, "
                       "AITER / FlyDSL stood in)",
        "specialized_decode": {
            "tp_size": dc.tp_size, "compute_units": dc.blocks, "widths": widths,
            "first_layer": dc.first_layer,
            "peer_bytes": ffn.peer_bytes(dc.tp_size),
            "scratch_bytes": scratch,
            "epoch_words": ffn.EPOCH_WORDS,
            "per_rank_bytes": sd_total,
        },
        "mono": {
            "tp": mc.TP, "compute_units": mc.BLOCKS, "max_tokens": mc.MAX_TOKENS, "max_context": mc.MAX_CONTEXT,
            "sparse_block": mc.SPARSE_BLOCK,
            "sym_bytes": layout.sym_layout(mc.TP)["_bytes"],
            "k1_scratch_bytes": pre_attn.SCRATCH_BYTES,
            "k4_scratch_bytes": layout.SCRATCH_BYTES,
            "cp_qkv_rows": mc.MAX_QKV_ROWS, "hidden": mc.HIDDEN, "o_k": mc.O_K, "inter": mc.INTER,
            "n_routed": mc.N_ROUTED,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.out, "w") as f:
        json.dump(run(), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
