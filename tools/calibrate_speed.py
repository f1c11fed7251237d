"""Fit the speed model's constants (vramcalc/data/speed.json) on the `calibrate` rows of
tests/data/throughput_cases.json. Holdout rows are never read here.

The step time is linear in the unknowns once each row's bytes are known (vramcalc/speed.py):
    step_ms = memory_ms_at_full_bandwidth x (1 / efficiency) + layers x fixed_ms_per_layer
              [+ 2 x layers x (TP - 1) x allreduce_us_per_peer / 1000]   (TP over PCIe)
then, on the profile just fitted, the host's cost per kernel launch without CUDA graphs (vLLM --enforce-eager,
vramcalc/eager.py): us_per_kernel x kernels per step, fitted on the calibrate eager rows against their measured
CUDA-graph twin (`graph_twin`) where the source gives one, else against the profile's graph-mode step
with llama.cpp on CUDA's per-layer cost fitted apart for builds before CUDA graphs (PR #6766, b2822) where the
calibration rows hold both eras (their `llamacpp_build`), and llama.cpp on Vulkan's one per build era of
data/speed.json llamacpp_vulkan_eras (every era needs a calibrate row),
so each engine:backend profile is one least-squares fit of relative error. A profile with fewer
than 3 rows fits only its efficiency and takes the per-layer cost of its engine's fallback profile.
Last, on the profiles just fitted, data/speed.json llamacpp_cuda_mmvq.relative_efficiency (the share of the
bandwidth llama.cpp's CUDA mat-vec kernel reaches on Q2_K / Q3_K weights, vramcalc/speed.py
llamacpp_mmvq_extra_ms): one least-squares fit of relative error on the calibrate llama.cpp CUDA rows of one
token a step that hold those types, on GPUs outside llamacpp_cuda_mmvq.pascal's compute capabilities; then
llamacpp_cuda_mmvq.pascal.relative_efficiency (the further share on Pascal, for the K-quant bytes) on the
calibrate rows of one token a step on those GPUs.
Run: python tools/calibrate_speed.py            (every constant)
     python tools/calibrate_speed.py --mmvq-only (that share alone, every other constant as stored; and the
                                                  profiles' median calibration errors it changes)
     python tools/calibrate_speed.py --eager-only (the launch cost alone, every other constant as stored; and
                                                   vllm:cuda's median calibration error)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from throughput_cases import case_spec, load_cases, predict_prefill_tps, predict_step_ms  # noqa: E402

from vramcalc.speed import (kv_read_bytes, llamacpp_cuda_graphs, llamacpp_vulkan_era, speed_data,  # noqa: E402
                            weight_reads)

DATA = ROOT / "vramcalc" / "data" / "speed.json"


def _features(c: dict) -> tuple[float, int]:
    spec = case_spec(c)
    reads = weight_reads(spec, c["quant"])
    b = c["batch"]
    total = reads.step_bytes(b) + b * kv_read_bytes(spec, c["context"], c.get("kv_dtype"), c["engine"])
    return total / c.get("tp", 1) / (c["bandwidth_gbs"] * 1e9) * 1e3, reads.num_layers


def main() -> None:
    data = json.loads(DATA.read_text())
    groups: dict[str, list] = {}
    for c in load_cases():
        # eager rows fit the launch cost below; a row marked profile_fit false serves only as an eager row's twin
        # an Arm single-board host (a Raspberry Pi driving the GPU over its PCIe slot) is not a host the model has a term
        # for (tests/data/throughput_cases.json `host`): such rows are never fitted
        if c["role"] == "calibrate" and not c.get("enforce_eager") and c.get("profile_fit", True) \
                and c.get("host") != "arm-sbc":
            groups.setdefault(f"{c['engine']}:{c['backend']}", []).append((c, *_features(c)))
    fallbacks = set(data["fallbacks"].values())
    for key in sorted(groups, key=lambda k: k not in fallbacks):  # fallbacks first: small profiles borrow from them
        rs = groups[key]
        prof = data["profiles"].setdefault(key, {"prefill_mfu": 0.4, "median_abs_error": 0.0})  # error set below
        if len(rs) < 3:
            fb = data["profiles"][data["fallbacks"][key.split(":")[0]]]
            # a backend without CUDA graphs (ROCm: GGML_HIP_GRAPHS is off by default) borrows the cost without them
            layer_ms = fb.get("fixed_ms_per_layer_before_cuda_graphs", fb["fixed_ms_per_layer"]) \
                if key.startswith("llamacpp:") and key != "llamacpp:cuda" else fb["fixed_ms_per_layer"]
            inv = np.mean([(c["step_ms"] - layer_ms * n) / mem for c, mem, n in rs])
            fit = {"inv_eff": inv, "layer": layer_ms}
        else:
            names = ["inv_eff", "layer"]
            pre_graphs = [key == "llamacpp:cuda" and (c["batch"] > 1 or not llamacpp_cuda_graphs(c.get("llamacpp_build")))
                          for c, *_ in rs]
            if any(pre_graphs) and not all(pre_graphs):
                names.append("layer_pre_graphs")  # llama.cpp builds before CUDA graphs (PR #6766): a cost of their own
            if any(c.get("tp", 1) > 1 for c, *_ in rs):
                names.append("allreduce")
            # llama.cpp on Vulkan: one per-layer cost per build era (data/speed.json llamacpp_vulkan_eras), each
            # fitted on the calibrate rows of its era, with the efficiency shared
            era = [llamacpp_vulkan_era(c.get("llamacpp_build")) for c, *_ in rs] if key == "llamacpp:vulkan" else []
            n_eras = len(data["llamacpp_vulkan_eras"]["boundary_prs"]) + 1 if era else 0
            if era:
                assert set(era) == set(range(n_eras)), f"{key}: an era without a calibrate row ({sorted(set(era))})"
                names = ["inv_eff"] + [f"layer_era{i}" for i in range(n_eras)]
            A = []
            for i, ((c, mem, n), pre) in enumerate(zip(rs, pre_graphs)):
                f = {"inv_eff": mem, "layer": 0 if pre and "layer_pre_graphs" in names else n,
                     "layer_pre_graphs": n if pre else 0, "allreduce": 2 * n * (c.get("tp", 1) - 1) * 1e-3}
                f.update({f"layer_era{e}": n if era and era[i] == e else 0 for e in range(n_eras)})
                A.append([f[k] / c["step_ms"] for k in names])
            x, *_ = np.linalg.lstsq(np.array(A), np.ones(len(A)), rcond=None)
            fit = dict(zip(names, x))
            if era:
                prof["fixed_ms_per_layer_by_era"] = [round(max(0.0, fit[f"layer_era{e}"]), 5) for e in range(n_eras)]
                fit["layer"] = fit[f"layer_era{n_eras - 1}"]  # the newest era's, for a build that names none
        prof["bandwidth_efficiency"] = round(1 / fit["inv_eff"], 4)
        prof["fixed_ms_per_layer"] = round(max(0.0, fit["layer"]), 5)
        if "layer_pre_graphs" in fit:
            prof["fixed_ms_per_layer_before_cuda_graphs"] = round(max(0.0, fit["layer_pre_graphs"]), 5)
        prof["calibrated_on"] = sorted(c["id"] for c, *_ in rs)
        if "allreduce" in fit:
            data["links"]["pcie"]["allreduce_us_per_peer"] = round(max(0.0, fit["allreduce"]), 2)
            data["links"]["pcie"]["calibrated"] = ", ".join(c["id"] for c, *_ in rs if c.get("tp", 1) > 1)
        print(key, {k: round(float(v), 4) for k, v in fit.items()}, len(rs), "rows")
    # prefill: tokens/s = tflops x mfu / (2 x active params); mfu is the mean of the calibrate rows
    pre: dict[str, list[float]] = {}
    for c in load_cases():
        if c.get("prefill_role") == "calibrate":
            pre.setdefault(f"{c['engine']}:{c['backend']}", []).append(c["prefill_tps"] / predict_prefill_tps(c, 1.0))
    for key, ratios in pre.items():
        data["profiles"][key]["prefill_mfu"] = round(float(np.mean(ratios)), 4)
        data["profiles"][key]["prefill_calibrated_on"] = sorted(
            c["id"] for c in load_cases() if c.get("prefill_role") == "calibrate" and f"{c['engine']}:{c['backend']}" == key)
        print(key, "prefill mfu", data["profiles"][key]["prefill_mfu"])
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    from vramcalc import data_files

    for cached in (data_files._text, data_files.load, data_files.raw):  # re-read the constants just written
        cached.cache_clear()
    fit_eager(data)
    _store(data)
    if data.get("llamacpp_cuda_mmvq"):
        fit_mmvq(data)
    store_median_errors(data, list(groups))


def _clear_caches() -> None:
    from vramcalc import data_files

    for cached in (data_files._text, data_files.load, data_files.raw):
        cached.cache_clear()


def _store(data: dict) -> None:
    """Write data/speed.json and drop the cached reads of it, so the next prediction uses what was written."""
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    _clear_caches()


def fit_mmvq(data: dict) -> None:
    """llamacpp_cuda_mmvq.relative_efficiency r: the step is the stored model's step without the term (r = 1) plus
    x (1/r - 1), x the milliseconds the row's Q2_K / Q3_K bytes take at the profile's bandwidth; y = 1/r - 1 is the
    least squares of the relative error over the calibrate rows holding those types."""
    m = data["llamacpp_cuda_mmvq"]
    m["relative_efficiency"] = 1.0
    _store(data)
    # the Pascal rows fit the Pascal share (fit_mmvq_pascal)
    y, used = _share_fit(m, False, lambda c: weight_reads(case_spec(c), c["quant"]).type_step_bytes(m["types"], 1))
    assert used, "no calibrate row holds the llamacpp_cuda_mmvq types"
    m["relative_efficiency"] = round(1 / (1 + y), 4)
    m["calibrated_on"] = used
    _store(data)
    print("llamacpp cuda mmvq", m["types"], "relative efficiency", m["relative_efficiency"], "on", used)
    if m.get("pascal"):
        fit_mmvq_pascal(data)


def _on_pascal(m: dict, c: dict) -> bool:
    """Whether the row's GPU has a compute capability of llamacpp_cuda_mmvq.pascal's range."""
    from vramcalc.gpus import find_gpu
    from vramcalc.speed import _cc

    pas = m.get("pascal")
    cc = find_gpu(c["gpu"]).compute_capability if pas and c.get("gpu") else None
    return bool(cc) and _cc(pas["min_compute_capability"]) <= _cc(cc) < _cc(pas["below_compute_capability"])


def _share_fit(m: dict, pascal: bool, slow_bytes: Callable[[dict], float]) -> tuple[float, list[str]]:
    """y = 1/share - 1 by least squares of the relative error over the calibrate llama.cpp CUDA rows of one token a
    step, on Pascal GPUs or off them, whose `slow_bytes` are not 0: each row's step is the stored model's step (the
    share at 1) plus x y, x the milliseconds those bytes take at the profile's bandwidth. With the ids used."""
    prof = speed_data().profiles["llamacpp:cuda"]
    num = den = 0.0
    used = []
    for c in load_cases():
        if c["role"] != "calibrate" or c["engine"] != "llamacpp" or c["backend"] != "cuda" or c["batch"] != 1 \
                or _on_pascal(m, c) != pascal:
            continue
        slow = slow_bytes(c)
        if not slow:
            continue
        x = slow / c.get("tp", 1) / (c["bandwidth_gbs"] * 1e9 * prof.bandwidth_efficiency) * 1e3 / c["step_ms"]
        num += x * (1 - predict_step_ms(c) / c["step_ms"])
        den += x * x
        used.append(c["id"])
    return (num / den if den else 0.0), used


def fit_mmvq_pascal(data: dict) -> None:
    """llamacpp_cuda_mmvq.pascal.relative_efficiency p: on those GPUs the step is the stored model's step with p = 1
    plus x (1/p - 1), x the milliseconds the row's K-quant bytes take at the profile's bandwidth times the share they
    have elsewhere (Q2_K / Q3_K: relative_efficiency); y = 1/p - 1 is the least squares of the relative error over
    the calibrate llama.cpp CUDA rows of one token a step on such GPUs that hold those types."""
    m = data["llamacpp_cuda_mmvq"]
    pas = m["pascal"]
    pas["relative_efficiency"] = 1.0
    _store(data)

    def slow(c: dict) -> float:  # each K-quant byte at the share it has elsewhere
        reads = weight_reads(case_spec(c), c["quant"])
        return sum(reads.type_step_bytes([t], 1) / (m["relative_efficiency"] if t in m["types"] else 1.0)
                   for t in pas["types"])

    y, used = _share_fit(m, True, slow)
    assert used, "no calibrate row on a Pascal GPU holds the llamacpp_cuda_mmvq.pascal types"
    pas["relative_efficiency"] = round(min(1.0, 1 / (1 + y)), 4)
    pas["calibrated_on"] = used
    _store(data)
    print("llamacpp cuda mmvq on Pascal", pas["types"], "relative efficiency", pas["relative_efficiency"], "on", used)


def store_median_errors(data: dict, keys: list[str]) -> None:
    """Each profile's median error on its calibrate rows (eager ones too), quoted by every estimate."""
    for key in keys:
        errs = [abs(predict_step_ms(c) / c["step_ms"] - 1) for c in load_cases()
                if c["role"] == "calibrate" and f"{c['engine']}:{c['backend']}" == key]
        data["profiles"][key]["median_abs_error"] = round(float(np.median(errs)), 4)
    DATA.write_text(json.dumps(data, indent=1) + "\n")


def eager_only() -> None:
    """vllm_eager.us_per_kernel alone on the stored profiles (after a kernel count read again from vLLM's code),
    and the median calibration error of vllm:cuda, whose calibrate eager rows it changes."""
    data = json.loads(DATA.read_text())
    fit_eager(data)
    _store(data)
    store_median_errors(data, ["vllm:cuda"])


def mmvq_only() -> None:
    data = json.loads(DATA.read_text())
    fit_mmvq(data)
    store_median_errors(data, ["llamacpp:cuda"])


def fit_eager(data: dict) -> None:
    """us_per_kernel: least squares of the relative error of each calibrate eager step, graph-mode step + us x
    kernels, where the graph-mode step is the measured twin's or the profile's prediction."""
    by_id = {c["id"]: c for c in load_cases()}
    num = den = 0.0
    used = []
    for c in load_cases():
        if c["role"] != "calibrate" or not c.get("enforce_eager"):
            continue
        twin = by_id[c["graph_twin"]]["step_ms"] if c.get("graph_twin") else predict_step_ms({**c, "enforce_eager": False})
        reads = weight_reads(case_spec(c), c["quant"])
        kernels = reads.eager_kernels + (2 * reads.num_layers if c.get("tp", 1) > 1 else 0)
        x = kernels * 1e-3 / c["step_ms"]  # ms per us of launch cost, relative to the measured step
        num += x * (1 - twin / c["step_ms"])
        den += x * x
        used.append(f"{c['id']} ({(c['step_ms'] - twin) / kernels * 1e3:.1f} us per kernel)")
    data["vllm_eager"]["us_per_kernel"] = round(num / den, 2)
    data["vllm_eager"]["calibrated_on"] = used
    print("vllm eager", data["vllm_eager"]["us_per_kernel"], "us per kernel on", used)


if __name__ == "__main__":
    mmvq_only() if "--mmvq-only" in sys.argv else eager_only() if "--eager-only" in sys.argv else main()
