"""Replay 'Model loading took X GiB' from real vLLM logs (tests/data/vllm_weight_logs.json) and
print vramcalc's per-rank weights beside them, with the error.

    python benchmarks/vllm_weights.py
"""

import json
import statistics
from pathlib import Path

from vramcalc.quant import target_scheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.weights import weights_per_rank

GIB = 2**30
cases = json.loads((Path(__file__).parent.parent / "tests/data/vllm_weight_logs.json").read_text())["cases"]
errors = []
print(f"{'model':36s} {'tp':>2s} {'pp':>2s} {'quant':12s} {'vLLM':>6s} {'log':>7s} {'ours':>7s} {'error':>7s}")
for c in cases:
    scheme = target_scheme(c["quant"]) if c["quant"] else None
    got = weights_per_rank(load(c["model"]), c["tp"], c["pp"], scheme, c["dtype"], c.get("mxfp4_backend"))[0].bytes / GIB
    err = (got - c["weights_gib"]) / c["weights_gib"]
    fitted = c.get("mxfp4_backend") == "triton_hopper"  # the factor is fitted on these
    if not fitted:
        errors.append(abs(err))
    print(f"{c['model'].split('/')[1][:36]:36s} {c['tp']:2d} {c['pp']:2d} {(c['quant'] or c['dtype'] or 'native'):12s} "
          f"{(c['engine_version'] or '?')[:6]:>6s} {c['weights_gib']:7.2f} {got:7.2f} {err:+7.2%}{'  (fitted on this)' if fitted else ''}")
errors.sort()
print(f"\nheld-out cases: {len(errors)}; median |error| {statistics.median(errors):.2%}; "
      f"p90 {errors[int(0.9 * (len(errors) - 1))]:.2%}; worst {errors[-1]:.2%}")
