"""Fit vramcalc/serving.py's vllm:cuda constants (vramcalc/data/serving.json) on the CALIBRATION split of
the measured serving runs (tests/serving_cases.py: whole deployments held out by a hash of their id,
chosen before any fit). Held-out rows are never read here.

Unknowns: bandwidth efficiency per GPU architecture (Hopper, Blackwell), the fixed cost per layer under
CUDA graphs, the decode share of the format's tensor rate and the prefill share per weight-format family (each runs its own GEMM kernel), the TTFT queue share, the decode steps a
new request waits through, how prefill scales with TP and the NVLink all-reduce latency per peer. Least squares of log(predicted / measured) over TPOT and TTFT of every
calibration run (scipy.optimize.least_squares; scipy is a tool dependency only, never a runtime one).
Run: PYTHONPATH=$PWD python3 tools/calibrate_serving.py

--llamacpp-batched fits llama.cpp's batched-decode compute share per backend instead (data/serving.json
llamacpp_batched): the share of the format rate (vramcalc/serving.py format_tflops: int8 MMA for quantized GGUF
on CUDA) that one decode step of B tokens reaches, on the `calibrate` rows of
tests/data/llamacpp_batched_runs.json (held-out split by source thread, tests/llamacpp_batched_cases.py, fixed
before this fit). Only rows where the compute bound decides the step inform it; the bandwidth efficiency and
the fixed cost per layer stay those of data/speed.json (fitted on single-stream runs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from serving_cases import deployment_of, load_runs, spec_reads  # noqa: E402

from vramcalc import serving  # noqa: E402

DATA = ROOT / "vramcalc" / "data" / "serving.json"
# prefill shares per weight-format family (vramcalc/serving.py weight_format): each family runs its own GEMM kernel
# (dense GEMMs, and MoE's grouped expert GEMMs as `<format>:moe`: the families the calibration runs hold)
FORMATS = ["bf16", "fp8", "nvfp4", "nvfp4:moe", "w4a16:moe", "mxfp4:moe"]
DENSE = [i for i, f in enumerate(FORMATS) if not f.endswith(":moe")]
NAMES = ["eff_hopper", "eff_blackwell", "fixed_ms_per_layer", "decode_mfu", "queue_share", "nvlink_us",
         "ttft_fixed_ms", "ttft_steps", "prefill_tp_exponent"] + [f"prefill_mfu_{f}" for f in FORMATS]
START = [0.8, 0.8, 0.01, 0.5, 0.05, 4.0, 10.0, 1.0, 1.0] + [0.5] * len(FORMATS)
LOW = [0.2, 0.2, 0.0, 0.02, 0.0, 0.0, 0.0, 0.0, 0.2] + [0.02] * len(FORMATS)
# a prefill GEMM reaches at most 85% of the vendor's dense tensor peak (assumption: the best cuBLAS / CUTLASS
# GEMMs on H100 SXM run about 700-800 of its 989 dense bf16 TFLOPS); left free, the 16-bit share runs into 1.0
# where it trades off against prefill_tp_exponent (few TP=1 runs)
HIGH = [1.0, 1.0, 0.2, 1.0, 50.0, 50.0, 200.0, 20.0, 1.0] + [0.85] * len(FORMATS)


def predict(run: dict, x: np.ndarray) -> tuple[float, float]:
    """(TPOT ms, TTFT ms) of one run at constants x."""
    dep = deployment_of(run)
    base = serving.constants(dep)
    fam = serving.arch_family(dep.gpu)
    k = base.model_copy(update={"efficiency": x[0] if fam == "Hopper" else x[1], "fixed_ms": x[2],
                                "decode_mfu": x[3], "queue_share": x[4], "allreduce_us": x[5],
                                "ttft_fixed_ms": x[6], "ttft_steps": x[7], "prefill_tp_exponent": x[8],
                                "prefill_mfu_by_format": dict(zip(FORMATS, map(float, x[9:])))})
    spec, reads = spec_reads(run["model"], run["quant"])
    itl, ttft, _, _ = serving._one_replica(reads, spec, dep, run["batch_size"], run["isl"], run["osl"], k)
    return itl * 1e3, ttft * 1e3


def main() -> None:
    rows = [r for r in load_runs() if r["role"] == "calibrate"]

    def residuals(x: np.ndarray) -> np.ndarray:
        out = []
        for r in rows:
            tpot, ttft = predict(r, x)
            out += [np.log(tpot / r["silicon_tpot_ms"]), 0.5 * np.log(ttft / r["silicon_ttft_ms"])]
        return np.array(out)

    fit = least_squares(residuals, START, bounds=(LOW, HIGH), loss="soft_l1", f_scale=0.2)
    x = fit.x
    print({n: round(float(v), 5) for n, v in zip(NAMES, x)}, len(rows), "calibration runs")
    data = json.loads(DATA.read_text())
    data["profiles"]["vllm:cuda"] = {
        "bandwidth_efficiency": {"Hopper": round(float(x[0]), 4), "Blackwell": round(float(x[1]), 4)},
        "fixed_ms_per_layer": round(float(x[2]), 5), "decode_mfu": round(float(x[3]), 4),
        # a format without its own share takes the lowest dense one fitted (the slower TTFT: conservative)
        "prefill_mfu": round(float(min(x[9 + i] for i in DENSE)), 4),
        "prefill_mfu_by_format": {f: round(float(v), 4) for f, v in zip(FORMATS, x[9:])},
        "queue_share": round(float(x[4]), 4),
        "nvlink_allreduce_us_per_peer": round(float(x[5]), 3), "ttft_fixed_ms": round(float(x[6]), 3),
        "ttft_steps": round(float(x[7]), 3), "prefill_tp_exponent": round(float(x[8]), 4),
        "calibrated_on": f"{len(rows)} calibration runs of tests/serving_cases.py (TPOT and TTFT)"}
    DATA.write_text(json.dumps(data, indent=1) + "\n")


def llamacpp_step_ms(row: dict, mfu: float) -> float:
    from llamacpp_batched_cases import deployment_of as lc_deployment

    dep = lc_deployment(row)
    k = serving.constants(dep).model_copy(update={"decode_mfu": mfu})
    spec, reads = spec_reads(row["model"], row["quant"])
    return sum(serving.step_terms(reads, spec, dep, row["B"], row["context"], k).values())


def main_llamacpp() -> None:
    from llamacpp_batched_cases import load_rows as lc_rows

    data = json.loads(DATA.read_text())
    fits = {}
    for backend in sorted({r["backend"] for r in lc_rows()}):
        rows = [r for r in lc_rows() if r["role"] == "calibrate" and r["backend"] == backend]
        if not rows:
            continue

        def residuals(x: np.ndarray, rows: list = rows) -> np.ndarray:
            return np.array([np.log(llamacpp_step_ms(r, float(x[0])) / r["step_ms"]) for r in rows])

        fit = least_squares(residuals, [0.5], bounds=([0.02], [1.0]), loss="soft_l1", f_scale=0.2)
        fits[backend] = {"decode_mfu": round(float(fit.x[0]), 4),
                         "calibrated_on": f"{len(rows)} calibration rows of tests/data/llamacpp_batched_runs.json "
                                          f"({', '.join(sorted({r['gpu'] for r in rows}))})"}
        print(backend, fits[backend])
    data["llamacpp_batched"] = fits
    DATA.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main_llamacpp() if "--llamacpp-batched" in sys.argv else main()
