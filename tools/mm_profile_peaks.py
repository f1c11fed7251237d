"""The encoder profiling peak each multimodal start-up log implies (tests/data/vllm_mm_profile_logs.json), and whether
the calibration logs can fix a per-tower estimate bytes = patches x (a x hidden + b x intermediate) x dtype bytes.

The implied peak of a log is vramcalc's available KV minus the logged one: vramcalc sizes weights, the language
model's activation and non-torch memory but no encoder term, so the difference is the encoder's peak plus whatever
else vramcalc misses. Only records split 'calibrate' may fix a constant; 'held_out' records are printed, never used.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python3 tools/mm_profile_peaks.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.vllm_feature_logs import MM_PROFILE, mm_profile_kv_gib  # noqa: E402
from vramcalc.sources.catalog import load  # noqa: E402

GIB = 2**30


def main():
    equations = []  # (patches, hidden, intermediate, implied bytes) from calibration records with a known dummy size
    for r in MM_PROFILE["records"]:
        if r["options"] is None:
            print(f"{r['id']:34} {r['split']:9} not replayable: {r['note']}")
            continue
        got = mm_profile_kv_gib(r)
        want = r["logged"].get("available_kv_gib")
        if want is None:
            print(f"{r['id']:34} {r['split']:9} vLLM refused; implied peak >= {got:.2f} GiB (a bound, not a value)")
            continue
        peak = (got - want) * GIB
        patches = r.get("dummy_patches")
        line = f"{r['id']:34} {r['split']:9} implied peak {peak / GIB:6.2f} GiB"
        if patches:
            v = load(r["model"]).vision
            line += f" over {patches} patches: {peak / patches / 1024:.1f} KiB/patch"
            if r["split"] == "calibrate":
                equations.append((patches, v.hidden_size, v.intermediate_size, peak))
        print(line)
    print()
    print(f"calibration equations with a known dummy size: {len(equations)}; unknowns a, b: 2")
    if len(equations) < 2 or len({(h, i) for _, h, i, _ in equations}) < 2:
        print("not enough: the calibration logs come from one tower shape, so a and b are not separable and no "
              "held-out KV log exists to check a fit (the one held-out record is a refused start, a bound only); "
              "vramcalc keeps the vllm.mm.encoder_profile upper-bound warning")


if __name__ == "__main__":
    main()
