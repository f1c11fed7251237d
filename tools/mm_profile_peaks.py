"""The encoder profiling peak each multimodal start-up log implies (tests/data/vllm_mm_profile_logs.json), a one-constant
per-tower estimate fitted on the calibration logs only, and its error on the held-out logs.

Implied peak: vramcalc's available KV minus the logged one (for a pair, the mm_on run's KV predicted from its mm_off
run, see benchmarks/vllm_feature_logs.py mm_pair_kv_gib, minus the logged mm_on KV). vramcalc sizes weights, the
language model's activation and non-torch memory but no encoder term, so that difference is the KV the encoder costs
(plus whatever else vramcalc misses).

The estimate tried: vLLM's profile run (vllm/v1/worker/gpu_model_runner.py profile_run) encodes the dummy item first
and runs the language model's dummy batch after, the encoder's outputs held in the encoder cache; the allocator's peak
over both is max(encoder peak, encoder cache + LM peak), so the KV lost beyond vramcalc's LM activation is
max(encoder peak - LM activation, encoder cache). Encoder peak = patches x c x tower hidden x 2 bytes (bf16), c free.
Only records with a known dummy patch count enter; c is fitted on split 'calibrate', held_out records only report.

Superseded by vramcalc/vllm/mm_profile.py (the live set read from vLLM 0.34.0's tower code, nothing fitted;
tools/vllm_mm_encoder_peak_oracle.py) and its replay (benchmarks/vllm_feature_logs.py mm_estimate_rows); kept as the
record of the fit that was not applied.

    PYTHONPATH=$PWD HF_HUB_OFFLINE=1 python3 tools/mm_profile_peaks.py
"""

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.vllm_feature_logs import MM_PROFILE, _mm_check, mm_pair_kv_gib, mm_profile_kv_gib  # noqa: E402
from vramcalc.sources.catalog import load  # noqa: E402

GIB = 2**30
DTYPE_BYTES = 2


def observations():
    """(record, vramcalc KV without encoder GiB, logged KV GiB or None) for each replayable record that is not a pair's
    mm_off reference."""
    by_id = {r["id"]: r for r in MM_PROFILE["records"]}
    for r in MM_PROFILE["records"]:
        if r["options"] is None or "mm_on" in r.get("pair", {}):
            continue
        got = mm_pair_kv_gib(r, by_id[r["pair"]["mm_off"]]) if "mm_off" in r.get("pair", {}) else mm_profile_kv_gib(r)
        yield r, got, r["logged"].get("available_kv_gib")


def encoder_loss_gib(r: dict, c: float) -> float:
    """KV lost to the encoder beyond vramcalc's LM activation, by the one-constant estimate (module docstring)."""
    v = load(r["model"]).vision
    d = _mm_check(r)
    peak = r["dummy_patches"] * c * v.hidden_size * DTYPE_BYTES
    return max(peak - d.activation_bytes, 0) / GIB


def main():
    fits = []
    rows = list(observations())
    for r, got, want in rows:
        if want is None:
            print(f"{r['id']:36} {r['split']:9} vLLM refused; implied loss >= {got:.2f} GiB (a bound, not a value)")
            continue
        loss = got - want
        line = f"{r['id']:36} {r['split']:9} implied loss {loss:6.2f} GiB"
        if r.get("dummy_patches"):
            v, d = load(r["model"]).vision, _mm_check(r)
            c = (loss * GIB + d.activation_bytes) / (r["dummy_patches"] * v.hidden_size * DTYPE_BYTES)
            line += f" over {r['dummy_patches']} patches (tower hidden {v.hidden_size}): c = {c:.1f}"
            if r["split"] == "calibrate":
                fits.append(c)
        print(line)
    if not fits:
        print("no calibration record with a known dummy size: nothing to fit")
        return
    c = statistics.median(fits)
    print(f"\nfitted on {len(fits)} calibration record(s): c = {c:.2f}")
    errs, base = [], []
    for r, got, want in rows:
        if r["split"] != "held_out" or want is None or not r.get("dummy_patches"):
            continue
        pred = got - encoder_loss_gib(r, c)
        errs.append(pred / want - 1)
        base.append(got / want - 1)
        print(f"held out {r['id']}: with the estimate {pred:.2f} GiB ({pred / want - 1:+.1%}), without it {got:.2f} GiB "
              f"({got / want - 1:+.1%}), logged {want:.2f} GiB")
    if errs:
        print(f"held-out median |error|: with the estimate {statistics.median(map(abs, errs)):.1%}, "
              f"without it {statistics.median(map(abs, base)):.1%} (n={len(errs)})")


if __name__ == "__main__":
    main()
