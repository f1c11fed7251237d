"""Published decode speeds with and without speculative decoding, replayed through the speed estimate (shared by
tests/test_spec_speed_measurements.py and benchmarks/spec_speed.py).

vLLM: tests/data/spec_speed_measurements.json and tests/data/vllm_spec_speedups.json, each case's speed-up (tokens/s
with the drafter over tokens/s without it) from vramcalc.check, at the acceptance length the post prints when it
prints one (turned into the per-token rate --spec-acceptance takes), else at the method's default.
llama.cpp: the runs of vramcalc/data/llamacpp_speculative.json, through llamacpp/spec_speed.py with_draft at the
printed acceptance. The split of each case is fixed by rule (tests/data/spec_speed_measurements.json _source)."""

from __future__ import annotations

import json
import statistics
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import vramcalc

DATA = Path(__file__).parent / "data"
MEASURED = DATA / "spec_speed_measurements.json"
OLD = DATA / "vllm_spec_speedups.json"


@lru_cache(maxsize=1)
def measured() -> dict:
    return json.loads(MEASURED.read_text())


def split(url: str, case_id: str) -> str:
    """held_out when crc32(url#id) is odd (the rule fixed before any comparison), else fit."""
    return "held_out" if zlib.crc32(f"{url}#{case_id}".encode()) % 2 else "fit"


def rate_from_length(length: float, k: int) -> float:
    """The per-token acceptance a with 1 + a + ... + a^k = the printed mean acceptance length (bisection; the sum
    rises with a). Leviathan et al. 2023 (arXiv:2211.17192) eq. 1 for i.i.d. acceptance."""
    lo, hi = 0.0, 0.999999
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(mid ** i for i in range(k + 1)) < length:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@lru_cache(maxsize=None)
def _draft_path(name: str) -> str:
    """The recorded drafter config as a local config.json (check() reads a drafter by path; no network)."""
    folder = Path(tempfile.mkdtemp(prefix=f"spec-{name}-"))
    (folder / "config.json").write_text(json.dumps(measured()["draft_configs"][name]["config"]))
    return str(folder / "config.json")


def vllm_cases() -> list[dict]:
    """Every vLLM case, the recorded ones of vllm_spec_speedups.json flattened to one run each."""
    out = []
    assumed = measured()["assumed"]
    for c in measured()["cases"]:
        base = c.get("baseline_tok_s") or 1e3 / c["baseline_tpot_ms"]
        spec = c.get("spec_tok_s") or 1e3 / c["spec_tpot_ms"]
        out.append({**c, "measured_base_tok_s": base, "measured_spec_tok_s": spec,
                    "prompt": c.get("prompt", 128), "output": c.get("output", 256),
                    "max_model_len": c.get("max_model_len", assumed["max_model_len"]),
                    "split": split(c["url"], c["id"])})
    for case in json.loads(OLD.read_text())["cases"]:
        for run in case["with_spec"]:
            sc = run["speculative_config"]
            cid = f"{case['id']}:k={sc['num_speculative_tokens']}"
            out.append({"id": cid, "url": case["url"], "model": case["model"], "gpu": case["gpu"],
                        "quant": case.get("quant"), "method": sc["method"], "k": sc["num_speculative_tokens"],
                        "acceptance_length": None, "measured_base_tok_s": case["baseline_tok_s"],
                        "measured_spec_tok_s": run["tok_s"], "prompt": case["prompt"], "output": case["output"],
                        "max_model_len": case["max_model_len"], "split": split(case["url"], cid)})
    return out


def vllm_predict(c: dict) -> dict[str, Any]:
    """The estimate's single-stream tokens/s without and with the drafter, and its speed-up."""
    gpu = c["gpu"]
    common: dict[str, Any] = dict(max_model_len=c["max_model_len"], prompt=c["prompt"], output=c["output"])
    if c.get("quant"):
        common["quant"] = c["quant"]
    sc: dict[str, Any] = {"method": c["method"], "num_speculative_tokens": c["k"]}
    if c.get("draft_config"):
        sc["model"] = _draft_path(c["draft_config"])
    rate = rate_from_length(c["acceptance_length"], c["k"]) if c.get("acceptance_length") else None
    base = vramcalc.check(c["model"], gpu, engine="vllm", **common).speed
    spec = vramcalc.check(c["model"], gpu, engine="vllm", speculative_config=sc, spec_acceptance=rate, **common).speed
    b, s = base.single_stream_tokens_per_s, spec.single_stream_tokens_per_s
    want = c["measured_spec_tok_s"] / c["measured_base_tok_s"]
    per = spec.speculative_tokens_per_step
    # one verify step (with its drafts) in plain steps, without the fitted overhead: one stream, so the step terms
    # are the whole inter-token latency (vramcalc/serving.py _one_replica)
    step = (sum(spec.terms_ms.values()) - spec.terms_ms.get("spec_overhead", 0.0)) * per / sum(base.terms_ms.values())
    return {"rate": rate, "base_tok_s": b, "spec_tok_s": s, "speedup": s / b, "measured_speedup": want,
            "speedup_error": (s / b) / want - 1, "spec_error": s / c["measured_spec_tok_s"] - 1,
            "tokens_per_step": per, "step_without_overhead": step}


def fit_verify_overhead() -> tuple[float, list[str]]:
    """data/vllm_spec.json verify_overhead: the median, over the fit split's runs with a printed acceptance length,
    of the measured verify step (acceptance length over the measured speed-up, in plain steps) less the modelled
    one. The held-out runs are never read."""
    shares, ids = [], []
    for c in vllm_cases():
        if c["split"] != "fit" or not c.get("acceptance_length"):
            continue
        r = vllm_predict(c)
        shares.append(c["acceptance_length"] / r["measured_speedup"] - r["step_without_overhead"])
        ids.append(c["id"])
    return statistics.median(shares), ids


def llamacpp_cases() -> list[dict]:
    """The published llama.cpp runs (data/llamacpp_speculative.json) with the catalog models they share a config with
    (tests/data/spec_speed_measurements.json llamacpp) and their split as that file fixes it."""
    from vramcalc.llamacpp.spec_speed import spec_data

    d = spec_data()
    where = {r["id"]: r for r in measured()["llamacpp"]}
    out = []
    for run in d.runs:
        role = "fit" if run.id in d.draft_token_overhead.fitted_on else "held_out"
        out.append({"run": run, **where[run.id], "split": role})
    return out


def llamacpp_predict(c: dict) -> dict[str, Any]:
    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.gpus import find_gpu as get_gpu
    from vramcalc.llamacpp.spec_speed import with_draft
    from vramcalc.serving import Deployment, for_engine_check
    from vramcalc.sources import catalog

    run = c["run"]
    spec, dspec, g = catalog.load(c["model"]), catalog.load(c["draft_model"]), get_gpu(c["gpu"])
    backend = "metal" if g.id.startswith("apple-") else "cuda"
    quant = f"gguf:{c['quant']}"
    est = for_engine_check(spec, "llamacpp", g, quant=quant, backend=backend, parallel=1, prompt=16,
                           output=run.n_predict)
    dep = Deployment(engine="llamacpp", backend=backend, gpu=g, quant=quant, link="pcie", parallel=1)
    fast, _ = with_draft(est, spec, g, dep, quant, dspec, plan_gguf(dspec, c["draft_quant"]), run.n_draft, run.accept, 1)
    want = run.tok_s_draft / run.tok_s_plain
    got = fast.per_stream_tokens_per_s / est.per_stream_tokens_per_s
    return {"base_tok_s": est.per_stream_tokens_per_s, "spec_tok_s": fast.per_stream_tokens_per_s, "speedup": got,
            "measured_speedup": want, "speedup_error": got / want - 1,
            "spec_error": fast.per_stream_tokens_per_s / run.tok_s_draft - 1}


def summary(errors: list[float]) -> tuple[int, float, float, float]:
    """(n, median |error|, p90 |error|, worst signed error)."""
    a = sorted(abs(e) for e in errors)
    if not a:
        return 0, float("nan"), float("nan"), float("nan")
    p90 = a[min(len(a) - 1, int(round(0.9 * (len(a) - 1))))]
    return len(a), statistics.median(a), p90, max(errors, key=abs)
