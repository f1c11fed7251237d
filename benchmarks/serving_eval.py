"""Shared by benchmarks/speed_accuracy.py and tests: each measured run's prediction error, and the slices
it belongs to. Errors are predicted / measured - 1 in tokens/s terms (speed) or in seconds (TTFT).

Serving runs: tests/serving_cases.py (held-out split by a hash of the deployment id, chosen before the
fit in tools/calibrate_serving.py). Decode runs: tests/data/throughput_cases.json (its `role` column,
fixed before tools/calibrate_speed.py was run; runs with an Arm single-board host are a slice of their own).
llama.cpp batched runs: tests/data/llamacpp_batched_runs.json
(held-out split by source thread, tests/llamacpp_batched_cases.py, fixed before tools/calibrate_serving.py
--llamacpp-batched); a row that repeats a throughput case (same model, GPU, batch and context) is counted once.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from serving_cases import deployment_of, load_runs, spec_reads  # noqa: E402
from throughput_cases import case_spec, load_cases  # noqa: E402

from vramcalc import serving  # noqa: E402


def serving_rows() -> list[dict]:
    out = []
    for r in load_runs():
        dep = deployment_of(r)
        spec, reads = spec_reads(r["model"], r["quant"])
        k = serving.constants(dep)
        itl, ttft, agg, _ = serving._one_replica(reads, spec, dep, r["batch_size"], r["isl"], r["osl"], k)
        n = r["batch_size"]
        measured_agg = n * r["osl"] / (r["silicon_ttft_ms"] / 1e3 + r["osl"] * r["silicon_tpot_ms"] / 1e3)
        moe = "MoE" if reads.num_experts else "dense"
        base = {"role": r["role"], "engine": "vllm", "backend": "cuda", "gpu": r["gpu"], "moe": moe, "tp": r["tp_size"]}
        speed_err = r["silicon_tpot_ms"] / (itl * 1e3) - 1  # per-stream tok/s
        agg_err = agg / measured_agg - 1
        slices = ["engine vllm", "backend vllm:cuda", f"GPU {r['gpu']}"]
        if n == 1:
            slices.append(f"single stream {moe}")
        else:
            slices.append("batch >= 2 aggregate")
        if r["tp_size"] > 1:
            slices.append("TP > 1")
        err = speed_err if n == 1 else agg_err
        out.append({**base, "id": r["id"], "err": err, "slices": slices,
                    "key": serving.slice_name("vllm", "cuda", moe == "MoE", n)})
        out.append({**base, "id": r["id"] + ":ttft", "err": ttft * 1e3 / r["silicon_ttft_ms"] - 1, "slices": ["TTFT"]})
        if n > 1:
            out.append({**base, "id": r["id"] + ":itl", "err": speed_err, "slices": ["batch >= 2 per-stream (1/ITL)"]})
    return out


def case_deployment(c: dict) -> serving.Deployment:
    """A throughput case as a serving Deployment: the table GPU at the case's bandwidth, or a bare device."""
    from vramcalc.gpus import GPU, find_gpu

    gpu = find_gpu(c["gpu"]).model_copy(update={"memory_bandwidth_gbs": c["bandwidth_gbs"]}) if c.get("gpu") else \
        GPU(id="custom", name=f"{c['bandwidth_gbs']} GB/s device", memory_bytes=0, memory_bandwidth_gbs=c["bandwidth_gbs"])
    return serving.Deployment(engine=c["engine"], backend=c["backend"], gpu=gpu, quant=c["quant"], tp=c.get("tp", 1),
                              link=c.get("link", "pcie"), enforce_eager=bool(c.get("enforce_eager")),
                              kv_dtype=c.get("kv_dtype"), llamacpp_build=c.get("llamacpp_build"))


def case_step_ms(c: dict) -> float:
    """One decode step of the case's batch by vramcalc/serving.py (a llama.cpp layer split reads each
    device's layers in turn: the one-device step)."""
    spec = case_spec(c)
    reads = spec_reads_case(c)
    return sum(serving.step_terms(reads, spec, case_deployment(c), c["batch"], c["context"]).values())


def spec_reads_case(c: dict):  # noqa: ANN201
    from vramcalc.speed import weight_reads

    return weight_reads(case_spec(c), c["quant"])


def llamacpp_batched_rows() -> list[dict]:
    from llamacpp_batched_cases import deployment_of as lc_deployment
    from llamacpp_batched_cases import load_rows as lc_rows

    seen = {(c["model"], c.get("gpu"), c["batch"], c["context"]) for c in load_cases()}
    out = []
    for r in lc_rows():
        if (r["model"], r["gpu"], r["B"], r["context"]) in seen:
            continue  # already a throughput case
        spec, reads = spec_reads(r["model"], r["quant"])
        pred = sum(serving.step_terms(reads, spec, lc_deployment(r), r["B"], r["context"]).values())
        moe = "MoE" if reads.num_experts else "dense"
        slices = ["engine llamacpp", f"backend llamacpp:{r['backend']}", f"GPU {r['gpu']}"]
        slices.append(f"single stream {moe}" if r["B"] == 1 else "batch >= 2 aggregate")
        if r["B"] > 1:
            slices.append(f"llama.cpp batch >= 2 {moe} ({r['kind']})")
        out.append({"role": r["role"], "id": f"{r['source']}|{r['model']}|{r['quant']}|B{r['B']}|PP{r['PP']}",
                    "err": r["step_ms"] / pred - 1, "slices": slices,
                    "key": serving.slice_name("llamacpp", r["backend"], moe == "MoE", r["B"])})
    return out


def decode_rows() -> list[dict]:
    out = []
    for c in load_cases():
        pred = case_step_ms(c)
        err = c["step_ms"] / pred - 1  # tokens/s: predicted / measured - 1
        spec = case_spec(c)
        moe = "MoE" if any(layer.mlp.num_experts for layer in spec.layers) else "dense"
        slices = [f"engine {c['engine']}", f"backend {c['engine']}:{c['backend']}"]
        slices.append(f"single stream {moe}" if c["batch"] == 1 else "batch >= 2 aggregate")
        if c.get("tp", 1) > 1:
            slices.append("TP > 1")
        if c.get("split") == "layer" and c.get("devices", 1) > 1:
            slices.append("layer split")
        if c["engine"] == "llamacpp" and c["batch"] > 1:
            slices.append(f"llama.cpp batch >= 2 {moe} (batched-bench)")
        if c.get("host") == "arm-sbc":
            # a Raspberry Pi driving the GPU: the model has no host term (the same GPU, build and model decode
            # 1.16-1.25x faster from an x86 desktop, tv03/tv05 and tv04/tv06), so these runs are their own slice,
            # quoted by no estimate as its uncertainty, and never fitted (tools/calibrate_speed.py)
            out.append({"role": c["role"], "id": c["id"], "err": err,
                        "slices": [f"Arm SBC host ({c['engine']}:{c['backend']})"]})
        else:
            out.append({"role": c["role"], "id": c["id"], "err": err, "slices": slices,
                        "key": serving.slice_name(c["engine"], c["backend"], moe == "MoE", c["batch"])})
        if c.get("prefill_tps") and c.get("gpu"):  # prompt processing (llama-bench pp): the prefill term alone
            dep = case_deployment(c)
            ms = serving.prefill_ms_per_token(spec_reads_case(c), spec, dep, c["prefill_tokens"])
            if ms:
                out.append({"role": c["prefill_role"], "id": c["id"] + ":prefill",
                            "err": 1e3 / ms / c["prefill_tps"] - 1, "slices": ["prefill (prompt tok/s)"]})
    return out
