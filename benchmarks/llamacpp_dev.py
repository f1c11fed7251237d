"""Replay the real llama.cpp GPU/CPU logs of ../shared/ground_truth/llamacpp_dev.json (full-size models,
CUDA / Metal / Vulkan / ROCm / CPU) against vramcalc's llama.cpp model, and print the median / p90 /
worst error per buffer kind. No GGUF files: the tensors are predicted from the catalog model and
the file type (gguf_mix.plan_gguf), so the model-size row also measures that prediction.

    python benchmarks/llamacpp_dev.py [path/to/llamacpp_dev.json]

The case -> catalog model and settings mapping is tests/data/llamacpp_{model_sizes,kv_logs}.json
(each with the log it came from). Cases whose settings the log does not give are skipped for KV.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramcalc.gguf_mix import plan_gguf  # noqa: E402
from vramcalc.gpus import find_gpu  # noqa: E402
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp  # noqa: E402
from vramcalc.sources.catalog import load  # noqa: E402

MIB = 2**20


def _cases(path: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(path.read_text())["cases"]}


def main() -> None:
    dev = _cases(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/ground_truth/llamacpp_dev.json")
    sizes = _cases(ROOT / "tests/data/llamacpp_model_sizes.json")
    kvs = _cases(ROOT / "tests/data/llamacpp_kv_logs.json")
    rows: dict[str, list[tuple[str, float]]] = {"model size": [], "KV buffer": [], "model buffer (device)": [],
                                                 "compute buffer (device)": [], "compute buffer (CPU only)": []}
    skipped = []
    for cid, case in sorted(dev.items()):
        m = sizes.get(cid)
        if m is None:
            skipped.append(f"{cid} ({case['model'].get('base_model')}: not in the catalog or no file type)")
            continue
        spec = load(m["catalog_model"])
        tensors = plan_gguf(spec, m["ftype"], **{k.replace("_type", "_type"): v for k, v in m["options"].items()})
        opts_kw = dict(kvs[cid]["options"]) if cid in kvs else {}
        opts_kw.pop("n_seq_max", None)
        ctx = case["context"]
        fa = ctx.get("flash_attn_resolved")
        opts = LlamaOptions(ftype=m["ftype"], n_ctx=opts_kw.pop("n_ctx", ctx.get("n_ctx")),
                            n_parallel=ctx.get("n_seq_max") or 1,
                            # builds that print no kv_unified predate per-slot streams: one cache over all cells
                            kv_unified=str(ctx.get("kv_unified")).lower() != "false",
                            n_ubatch=opts_kw.pop("n_ubatch", None) or ctx.get("n_ubatch") or 512,
                            flash_attn="on" if fa == "enabled" else "off",  # builds that print nothing predate -fa auto
                            # no log prints n_outputs_max: every build predates PR #23861, n_batch logits rows
                            n_outputs_max=ctx.get("n_batch") or 2048,
                            **{k: v for k, v in opts_kw.items() if k in ("type_k", "type_v", "swa_full", "mla_layout")})
        backend = case["hardware"]["backend"]
        off = case.get("offloaded_layers") or ""
        full = off and off.split("/")[0] == off.split("/")[1]
        single = len(case["measured"].get("compute_buffers_device_mib") or []) == 1
        single = single and "experts on CPU" not in case["hardware"]["backend"]  # -ot: GPU op offload not modelled
        gpu = find_gpu("apple-m4-max" if "Metal" in backend else "h100-sxm") if full and single else None
        r = check_llamacpp(spec, gpu, opts, tensors, solve=False)
        size = r.model_size_bytes / 2**30
        rows["model size"].append((cid, size / m["model_size_gib"] - 1))
        meas = case["measured"]
        logged_kv = sum(c["total_mib"] for c in meas.get("kv_caches") or [])
        if logged_kv and cid in kvs:
            ours = sum(c.k_bytes + c.v_bytes for c in r.caches if c.name != "recurrent") / MIB
            rows["KV buffer"].append((cid, ours / logged_kv - 1))
        if gpu is not None:
            bufs = [b for b in meas.get("model_buffers_mib") or [] if not b["device"].startswith("CPU")]
            if len(bufs) == 1:
                rows["model buffer (device)"].append((cid, r.devices[0].model_buffer_bytes / MIB / bufs[0]["mib"] - 1))
            comp = meas["compute_buffers_device_mib"][0]["mib"]
            rows["compute buffer (device)"].append((cid, r.devices[0].compute_buffer_bytes / MIB / comp - 1))
        elif backend.startswith("CPU") and [b["device"] for b in meas.get("compute_buffers_device_mib") or []] == ["CPU"]:
            comp = meas["compute_buffers_device_mib"][0]["mib"]
            rows["compute buffer (CPU only)"].append((cid, r.devices[-1].compute_buffer_bytes / MIB / comp - 1))
    print(f"{'buffer kind':26s} {'n':>3s} {'median':>8s} {'p90':>8s} {'worst':>8s}   cases (signed error)")
    for kind, errs in rows.items():
        if not errs:
            continue
        a = sorted(abs(e) for _, e in errs)
        p90 = a[min(len(a) - 1, int(round(0.9 * (len(a) - 1))))]
        print(f"{kind:26s} {len(a):3d} {statistics.median(a):8.2%} {p90:8.2%} {a[-1]:8.2%}   "
              + ", ".join(f"{c} {e:+.1%}" for c, e in errs))
    if skipped:
        print("skipped: " + "; ".join(skipped))


if __name__ == "__main__":
    main()
