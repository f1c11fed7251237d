"""The speed estimate with speculative decoding against published measurements: each run's speed-up (tokens/s with
the drafter over tokens/s without it) predicted and published, and the |error| median / p90 by split (held out by a
hash of URL and case id, fixed before any comparison; vLLM's verify overhead, data/vllm_spec.json verify_overhead,
is fitted on the fit split by tools/fit_spec_overhead.py).
vLLM: tests/data/spec_speed_measurements.json and tests/data/vllm_spec_speedups.json; llama.cpp: the published runs
of vramcalc/data/llamacpp_speculative.json (its draft-token overhead fitted on the fit run).

    PYTHONPATH=$PWD python benchmarks/spec_speed.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import spec_speed_cases as S  # noqa: E402


def _line(name: str, errors: list[float]) -> str:
    n, median, p90, worst = S.summary(errors)
    return f"{name}: n {n}, median {median:.1%}, p90 {p90:.1%}, worst {worst:+.1%}"


def main() -> None:
    rows = [(c, S.vllm_predict(c)) for c in S.vllm_cases()]
    print("vLLM single-stream speed-up, predicted vs published (acceptance: the printed length, else the default)")
    for c, r in rows:
        given = f"AL {c['acceptance_length']}" if c.get("acceptance_length") else "default acceptance"
        print(f"  {c['id']:48s} {c['split']:8s} {c['method']:6s} k={c['k']} {given:18s} "
              f"{r['speedup']:.2f}x vs {r['measured_speedup']:.2f}x  {r['speedup_error']:+.1%}")
    for split in ("fit", "held_out"):
        print("  " + _line(f"vLLM {split}", [r["speedup_error"] for c, r in rows if c["split"] == split]))
    print("  " + _line("vLLM all", [r["speedup_error"] for _, r in rows]))
    print("  " + _line("vLLM with a printed acceptance length",
                       [r["speedup_error"] for c, r in rows if c.get("acceptance_length")]))
    print("llama.cpp draft model, predicted vs published (the printed acceptance)")
    for c in S.llamacpp_cases():
        r = S.llamacpp_predict(c)
        print(f"  {c['id']:48s} {c['split']:8s} {r['speedup']:.2f}x vs {r['measured_speedup']:.2f}x  "
              f"{r['speedup_error']:+.1%} (tokens/s {r['spec_error']:+.1%})")


if __name__ == "__main__":
    main()
