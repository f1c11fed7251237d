"""Replay the real llama.cpp GPU/CPU logs of ../shared/ground_truth/llamacpp_dev.json (full-size models,
CUDA / Metal / Vulkan / ROCm / CPU) against vramcalc's llama.cpp model, and print the median / p90 /
worst error per buffer kind, on the calibration logs and on the held-out split
(tests/data/llamacpp_dev_split.json, chosen by log source before any compute rule was fitted; nothing
is tuned on it). No GGUF files: the tensors are predicted from the catalog model and the file type
(gguf_mix.plan_gguf), so the model-size row also measures that prediction.

    python benchmarks/llamacpp_dev.py [path/to/llamacpp_dev.json]

The case -> catalog model and settings mapping is tests/data/llamacpp_{model_sizes,kv_logs,dev_gpus}.json
(each with the log it came from). The logs of tests/data/llamacpp_dev_more.json (public GitHub threads, each
with its settings) are held out when recorded and reported with that split, except those llamacpp_dev_split.json
moves to calibration because they were in view while a rule was derived (m02). Cases whose settings the log does not give are skipped for KV.
Each log is replayed under the build it names where data/llamacpp_builds.json places it; a build placed against
some PRs only takes the modelled build's rule for the others; a log of a build older than every PR modelled is
left out and listed.
Model buffer rows: each GPU's, and on the logs of tests/data/llamacpp_dev_more.json the host's by buffer type
(CUDA_Host, the pinned one --no-mmap fills, and CPU / CPU_Mapped).
Compute rows: each GPU's compute buffer as the log names it (CUDA0, CUDA1 ...), the host's compute
buffers together (CUDA_Host + CPU, or Metal's CPU buffer), and the CPU-only runs' one buffer.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vramcalc.gguf_mix import plan_gguf  # noqa: E402
from vramcalc.gpus import find_gpu  # noqa: E402
from vramcalc.errors import NotModelledError  # noqa: E402
from vramcalc.llamacpp.builds import resolve_build  # noqa: E402
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp  # noqa: E402
from vramcalc.sources.catalog import load  # noqa: E402

MIB = 2**20
KINDS = ("model size", "KV buffer", "model buffer (device)", "model buffer (host)", "compute buffer (each GPU)",
         "compute buffer (host)", "compute buffer (CPU only)")


def _cases(path: Path) -> dict[str, dict]:
    return {c["id"]: c for c in json.loads(path.read_text())["cases"]}


def _fa_on(ctx: dict) -> bool:
    return ctx.get("flash_attn_resolved") == "enabled" or str(ctx.get("flash_attn")).lower() in ("1", "true", "on",
                                                                                                 "enabled")


def _placed_build(named: str | None) -> tuple[str, bool] | None:
    """The build a log names ("7342 (2fbe3b7bb)", a release, or a date): (build, placed), placed when
    data/llamacpp_builds.json places it against every PR; a build placed against some PRs only follows the modelled
    build's rule for the others (builds.resolve_build unplaced_as_modelled). No build named: the modelled one. None:
    older than the oldest PR modelled (the rules of such builds are not modelled, so the log is left out)."""
    if not named:
        return "latest", False
    b = named.split()[0]
    try:
        resolve_build(b)
        return b, True
    except NotModelledError:
        pass
    try:
        resolve_build(b, unplaced_as_modelled=True)
    except NotModelledError:
        return None
    return b, False


NOT_MODELLED: list[str] = []  # the logs of builds older than the oldest PR modelled, with the reason


def measure(dev_path: Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """{"calibration"|"held-out": {kind: [(case, signed error)]}}."""
    NOT_MODELLED.clear()
    dev = _cases(dev_path)
    sizes = _cases(ROOT / "tests/data/llamacpp_model_sizes.json")
    kvs = _cases(ROOT / "tests/data/llamacpp_kv_logs.json")
    gpus = _cases(ROOT / "tests/data/llamacpp_dev_gpus.json")
    held = set(json.loads((ROOT / "tests/data/llamacpp_dev_split.json").read_text())["held_out"])
    out: dict[str, dict[str, list[tuple[str, float]]]] = {s: {k: [] for k in KINDS} for s in ("calibration", "held-out")}
    for cid, case in sorted(dev.items()):
        g = gpus.get(cid, {})
        mid = g.get("model_from", cid)
        m = sizes.get(mid)
        if m is None:
            continue
        rows = out["held-out" if cid in held else "calibration"]
        spec = load(m["catalog_model"])
        tensors = plan_gguf(spec, m["ftype"], **m["options"])
        # the build the log names (its release number, else a date in tests/data/llamacpp_dev_gpus.json) where
        # data/llamacpp_builds.json places it; modelled_as: a date standing for a build placed in part, on the same
        # side of every PR that touches the log (with the reason)
        named = g.get("modelled_as") or g.get("build") or case.get("llama_cpp_build")
        placed_build = _placed_build(named)
        if placed_build is None:
            NOT_MODELLED.append(f"{cid} (build {named}: {g.get('build_note') or 'older than the oldest PR modelled'})")
            continue
        build, placed = placed_build
        opts_kw = dict(kvs[cid]["options"]) if cid in kvs else {}
        opts_kw.pop("n_seq_max", None)
        ctx = case["context"]
        opts = LlamaOptions(ftype=m["ftype"], n_ctx=opts_kw.pop("n_ctx", ctx.get("n_ctx")),
                            n_parallel=ctx.get("n_seq_max") or 1,
                            # builds that print no kv_unified predate per-slot streams: one cache over all cells
                            kv_unified=str(ctx.get("kv_unified")).lower() != "false",
                            n_ubatch=opts_kw.pop("n_ubatch", None) or ctx.get("n_ubatch") or 512,
                            flash_attn="on" if _fa_on(ctx) else "off",  # builds that print nothing predate -fa auto
                            # a placed build follows its own logits-row rule; where the build cannot be placed, the
                            # hand-set n_batch rows (no log prints n_outputs_max: each predates PR #23861)
                            n_outputs_max=None if placed else ctx.get("n_batch") or 2048,
                            type_k=opts_kw.pop("type_k", None) or (ctx.get("type_k") or "f16").upper(),
                            type_v=opts_kw.pop("type_v", None) or (ctx.get("type_v") or "f16").upper(),
                            **{k: v for k, v in opts_kw.items() if k in ("swa_full", "mla_layout")},
                            build=build, build_unplaced_as_modelled=not placed,
                            **g.get("options", {}))
        gl = [find_gpu(x) for x in g.get("gpus", [])]
        r = check_llamacpp(spec, gl or None, opts, tensors, solve=False)
        meas = case["measured"]
        if mid == cid:
            rows["model size"].append((cid, r.model_size_bytes / 2**30 / m["model_size_gib"] - 1))
        logged_kv = sum(c["total_mib"] for c in meas.get("kv_caches") or [])
        if logged_kv and cid in kvs:
            ours = sum(c.k_bytes + c.v_bytes for c in r.caches if c.name != "recurrent") / MIB
            rows["KV buffer"].append((cid, ours / logged_kv - 1))
        logged_dev = meas.get("compute_buffers_device_mib") or []
        if gl:
            bufs = [b for b in meas.get("model_buffers_mib") or [] if not b["device"].startswith("CPU")
                    and not b["device"].endswith("_Host")]
            placed = g.get("options", {})  # -ot / --cpu-moe runs: the log gives no command to check the split against
            if len(bufs) == len(gl) and not (placed.get("override_tensor") or placed.get("cpu_moe")):
                for d, b in enumerate(bufs):
                    rows["model buffer (device)"].append((f"{cid}/{d}", r.devices[d].model_buffer_bytes / MIB / b["mib"] - 1))
            for d, b in enumerate(logged_dev):
                rows["compute buffer (each GPU)"].append((f"{cid}/{b['device']}",
                                                          r.devices[d].compute_buffer_bytes / MIB / b["mib"] - 1))
            host = sum(b["mib"] for b in meas.get("compute_buffers_host_mib") or [])
            if host:
                rows["compute buffer (host)"].append((cid, r.host_compute_bytes / MIB / host - 1))
        elif [b["device"] for b in logged_dev] == ["CPU"]:
            rows["compute buffer (CPU only)"].append((cid, r.host_compute_bytes / MIB / logged_dev[0]["mib"] - 1))
    _measure_more(out, held)
    return out


def _measure_more(out: dict[str, dict[str, list[tuple[str, float]]]], held: set[str]) -> None:
    """The logs of tests/data/llamacpp_dev_more.json (each with its own settings): held out when recorded, but for
    the ones tests/data/llamacpp_dev_split.json moves to calibration (in view while a rule was derived)."""
    moved = json.loads((ROOT / "tests/data/llamacpp_dev_split.json").read_text()).get("calibration_moved", {})
    for case in json.loads((ROOT / "tests/data/llamacpp_dev_more.json").read_text())["cases"]:
        cid = case["id"]
        assert cid in held or cid in moved, f"{cid}: a new log is held out (tests/data/llamacpp_dev_split.json)"
        rows = out["held-out" if cid in held else "calibration"]
        # spec_overrides: the fields the log shows the file differs from the catalog model in
        spec = load(case["catalog_model"]).model_copy(update=case.get("spec_overrides", {}))
        # tensor_retype: the types the file's quantizer gave where the modelled build's mix differs (the log's counts)
        retype = [(re.compile(p), ty) for p, ty in case.get("tensor_retype", {}).items()]
        tensors = [(t, next((ty for rx, ty in retype if rx.search(t.name)), ggml))
                   for t, ggml in plan_gguf(spec, case["ftype"])]
        gl = [find_gpu(g) for g in case["gpus"]]
        placed_build = _placed_build(case.get("modelled_as") or case.get("build"))
        assert placed_build is not None, cid
        build, placed = placed_build
        r = check_llamacpp(spec, gl, LlamaOptions(ftype=case["ftype"], n_outputs_max=case["options"].get("n_batch", 2048),
                                                  build=build, build_unplaced_as_modelled=not placed,
                                                  **case["options"]), tensors, solve=False)
        meas = case["measured"]
        if "model_size_mib" in meas:
            rows["model size"].append((cid, r.model_size_bytes / MIB / meas["model_size_mib"] - 1))
        if "kv_caches" in meas:
            ours = sum(c.k_bytes + c.v_bytes for c in r.caches if c.name != "recurrent") / MIB
            rows["KV buffer"].append((cid, ours / sum(c["k_mib"] + c["v_mib"] for c in meas["kv_caches"]) - 1))
        bufs = meas.get("model_buffers_mib") or {}
        gpu_bufs = [(d, v) for d, v in bufs.items() if not d.startswith("CPU") and not d.endswith("_Host")]
        for d, (name, mib) in enumerate(gpu_bufs):
            rows["model buffer (device)"].append((f"{cid}/{d}", r.devices[d].model_buffer_bytes / MIB / mib - 1))
        host = r.devices[-1]  # the host's model buffers by type: the pinned one (--no-mmap) and the CPU / mapped one
        for name, mib in bufs.items():
            if name.endswith("_Host"):
                ours = host.pinned_model_buffer_bytes
            elif name in ("CPU", "CPU_Mapped"):  # (a log that prints no CPU buffer has no row for it)
                ours = host.model_buffer_bytes - host.pinned_model_buffer_bytes
            else:
                continue
            rows["model buffer (host)"].append((f"{cid}/{name}", ours / MIB / mib - 1))
        for d, (name, mib) in enumerate((meas.get("compute_buffers_mib") or {}).items()):
            rows["compute buffer (each GPU)"].append((f"{cid}/{name}", r.devices[d].compute_buffer_bytes / MIB / mib - 1))
        host_compute = sum((meas.get("host_compute_buffers_mib") or {}).values())
        if host_compute:
            rows["compute buffer (host)"].append((cid, r.host_compute_bytes / MIB / host_compute - 1))


def stats(errs: list[tuple[str, float]]) -> tuple[float, float, float]:
    a = sorted(abs(e) for _, e in errs)
    return statistics.median(a), a[min(len(a) - 1, int(round(0.9 * (len(a) - 1))))], a[-1]


def main() -> None:
    res = measure(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/ground_truth/llamacpp_dev.json")
    for split, rows in res.items():
        print(f"\n{split}\n{'buffer kind':26s} {'n':>3s} {'median':>8s} {'p90':>8s} {'worst':>8s}   cases (signed error)")
        for kind, errs in rows.items():
            if errs:
                med, p90, worst = stats(errs)
                print(f"{kind:26s} {len(errs):3d} {med:8.2%} {p90:8.2%} {worst:8.2%}   "
                      + ", ".join(f"{c} {e:+.1%}" for c, e in errs))
        compute = rows["compute buffer (each GPU)"] + rows["compute buffer (CPU only)"]
        if compute:
            med, p90, worst = stats(compute)
            print(f"{'compute, all devices':26s} {len(compute):3d} {med:8.2%} {p90:8.2%} {worst:8.2%}")
    if NOT_MODELLED:
        print("\nleft out, their build's rules not modelled: " + "; ".join(NOT_MODELLED))


if __name__ == "__main__":
    main()
