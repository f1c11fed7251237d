"""Replay the real vLLM start-up logs recorded per serving feature (tests/data/vllm_spec_logs.json,
tests/data/vllm_feature_logs.json) and print each figure's error, by feature and split. No parameter of
vramcalc is fitted on these logs except where a record says split "fit"; records with a split say it, the
older ones without one print as "unsplit".

    PYTHONPATH=$PWD python benchmarks/vllm_feature_logs.py
"""

import json
import statistics
from pathlib import Path

from vramcalc.errors import NotModelledError, UnknownModelError
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.kv import KVSettings, capacity, kv_pool
from vramcalc.vllm.spec_decode import plan_speculative

GIB = 2**30
DATA = Path(__file__).parent.parent / "tests/data"
SPEC = json.loads((DATA / "vllm_spec_logs.json").read_text())
FEAT = json.loads((DATA / "vllm_feature_logs.json").read_text())
MM_PROFILE = json.loads((DATA / "vllm_mm_profile_logs.json").read_text())


def kv_tokens(case, with_drafter=True):
    """KV tokens from the logged available memory (the drafter's layers join the pool when modelled)."""
    spec, o = load(case["model"]), case["options"]
    sc = o.get("speculative_config")
    plan = plan_speculative(sc, spec, o["tp"], 1, o["max_model_len"], None) if sc and with_drafter else None
    s = KVSettings(tp=o["tp"], kv_cache_dtype=o["kv_cache_dtype"], max_num_batched_tokens=o["max_num_batched_tokens"],
                   num_speculative_tokens=(sc or {}).get("num_speculative_tokens", 0) if sc else 0)
    pool_spec = spec.model_copy(update={"layers": spec.layers + plan.draft_layers}) if plan else spec
    cap = capacity(kv_pool(pool_spec, s), int(case["logged"]["available_kv_gib"] * GIB), o["max_model_len"], s)
    return cap.kv_cache_tokens


def _available(r: dict) -> int:
    """The logged available KV memory: bytes where printed, else the GiB figure at its midpoint (rounded to 0.01)."""
    lg = r["logged"]
    return lg["available_kv_bytes"] if "available_kv_bytes" in lg else int(lg["available_kv_gib"] * 2**30)


def drafter_kv_tokens(r, with_drafter=True):
    """KV tokens of a spec_decode_kv record from its printed available memory; the drafter's config is the record's."""
    spec, o = load(r["model"]), r["options"]
    sc = o["speculative_config"]
    draft = spec_from_config(r["draft_config"], model_id=sc["model"], source=r["draft_config_source"],
                             where=f"{r['id']} draft_config")
    plan = plan_speculative(sc, spec, o["tp"], 1, o["max_model_len"], None, draft)
    s = KVSettings(tp=o["tp"], kv_cache_dtype=o["kv_cache_dtype"], max_num_batched_tokens=o["max_num_batched_tokens"],
                   block_size=o["block_size"], num_speculative_tokens=plan.num_speculative_tokens,
                   max_model_len=o["max_model_len"])
    pool_spec = spec.model_copy(update={"layers": spec.layers + plan.draft_layers}) if with_drafter else spec
    return capacity(kv_pool(pool_spec, s), _available(r), o["max_model_len"], s).kv_cache_tokens


def drafter_weights_gib(r):
    """'Model loading took' of a spec_decode_kv record: the target's weights and the drafter's, as check_vllm adds
    them (the GPU only has to hold them: the figure does not depend on it)."""
    o, sc = r["options"], r["options"]["speculative_config"]
    draft = spec_from_config(r["draft_config"], model_id=sc["model"], source=r["draft_config_source"],
                             where=f"{r['id']} draft_config")
    res = check_vllm(load(r["model"]), find_gpu("h100-sxm"),
                     VLLMOptions(tp=o["tp"], max_model_len=o["max_model_len"], speculative_config=sc), draft=draft)
    return res.devices[0].weights_bytes / GIB


def _mm_check(r: dict):
    return check_vllm(load(r["model"]), find_gpu(r["gpu_for_check"]), VLLMOptions(**r["options"])).devices[0]


def mm_profile_kv_gib(r: dict) -> float:
    """vramcalc's available KV (rank 0, GiB) for a vllm_mm_profile_logs.json record, its options as logged. vramcalc
    has no term for the encoder's profiling peak, so this stands above the logged figure by that peak (and whatever
    else is missing)."""
    return _mm_check(r).kv_cache_bytes / GIB


def mm_pair_kv_gib(on: dict, off: dict) -> float:
    """The mm_on run's KV predicted from its pair: the logged mm_off KV less vramcalc's difference between the two runs
    (the tower's weights; no encoder term). What both runs share and vramcalc lacks (a drafter) cancels."""
    return off["logged"]["available_kv_gib"] - (mm_profile_kv_gib(off) - mm_profile_kv_gib(on))


def mm_profile_rows():
    """(id, split, vramcalc KV GiB, logged KV GiB or None for a refused start, relative error or None, note). A pair's
    mm_on record is replayed through the pair; its mm_off record is the pair's reference, not a row of its own."""
    by_id = {r["id"]: r for r in MM_PROFILE["records"]}
    for r in MM_PROFILE["records"]:
        if r["options"] is None:
            yield r["id"], r["split"], None, r["logged"].get("available_kv_gib"), None, r["note"]
            continue
        if "mm_on" in r.get("pair", {}):
            continue
        want = r["logged"].get("available_kv_gib")
        if "mm_off" in r.get("pair", {}):
            off = by_id[r["pair"]["mm_off"]]
            got = mm_pair_kv_gib(r, off)
            yield (r["id"], r["split"], got, want, got / want - 1,
                   f"pair with {off['id']}: logged mm_off {off['logged']['available_kv_gib']:.2f} less vramcalc's tower "
                   f"{off['logged']['available_kv_gib'] - got:.2f} = {got:.2f} vs logged {want:.2f} GiB: "
                   f"peak excess {got - want:.2f} GiB")
            continue
        got = mm_profile_kv_gib(r)
        if want is None:  # vLLM refused to start: its budget was at most 0
            yield (r["id"], r["split"], got, None, None,
                   f"vLLM refused ({r['logged']['message']}); vramcalc {got:.2f} GiB: a false fit, the peak >= {got:.2f} GiB")
        else:
            yield (r["id"], r["split"], got, want, got / want - 1,
                   f"vramcalc {got:.2f} vs logged {want:.2f} GiB: peak + missing {got - want:.2f} GiB")


def mm_estimate_rows():
    """(id, split, KV GiB with vramcalc's encoder estimate subtracted, logged KV GiB or None for a refused start,
    relative error or None) per replayed mm_on record: vramcalc/vllm/mm_profile.py's KV cost (DeviceBudget
    encoder_profile_bytes) taken off vramcalc's KV, or for a pair off the mm_on KV the pair predicts."""
    by_id = {r["id"]: r for r in MM_PROFILE["records"]}
    for r in MM_PROFILE["records"]:
        if r["options"] is None or "mm_on" in r.get("pair", {}):
            continue
        d = _mm_check(r)
        own = (d.kv_cache_bytes - d.encoder_profile_bytes) / GIB
        got = (by_id[r["pair"]["mm_off"]]["logged"]["available_kv_gib"]
               - (mm_profile_kv_gib(by_id[r["pair"]["mm_off"]]) - own)) if "mm_off" in r.get("pair", {}) else own
        want = r["logged"].get("available_kv_gib")
        yield r["id"], r["split"], got, want, (got / want - 1) if want else None


def rows():
    for c in SPEC["cases"]:
        if c["logged"]["available_kv_gib"] is None:
            continue
        feat = "KV tokens, " + (c["options"]["speculative_config"]["method"] if "speculative_config" in c["options"]
                                else "no drafter")
        yield feat, c.get("split", "unsplit"), c["id"], kv_tokens(c) / c["logged"]["kv_tokens"] - 1, ""
    for c in SPEC["weights"]:
        got = check_vllm(load(c["model"]), find_gpu("rtx-3090"), VLLMOptions(**c["options"])).devices[0].weights_bytes
        yield "weights, mtp", c.get("split", "unsplit"), c["id"], got / GIB / c["logged"]["model_loading_gib"] - 1, ""
    for c in SPEC.get("not_modelled", []):
        try:
            kv_tokens(c)
            note = "answered"
        except NotModelledError:
            note = "refused; target-only pool shown"
        except UnknownModelError:
            note = "drafter config not published: refused; target-only pool shown"
        err = kv_tokens(c, with_drafter=False) / c["logged"]["kv_tokens"] - 1
        yield "KV tokens, " + c["options"]["speculative_config"]["method"], c["split"], c["id"], err, note
    for r in FEAT.get("spec_decode_kv", []):
        want = r["logged"]["kv_tokens"]
        off = drafter_kv_tokens(r, with_drafter=False) / want - 1
        yield ("KV tokens, " + r["options"]["speculative_config"]["method"], r["split"], r["id"],
               drafter_kv_tokens(r) / want - 1, f"without the drafter's KV layer {off:+.2%}")
        if "model_loading_gb" in r["logged"]:
            yield ("weights, " + r["options"]["speculative_config"]["method"], r["split"], r["id"],
                   drafter_weights_gib(r) / r["logged"]["model_loading_gb"] - 1, "target + head")
    for r in FEAT.get("lora_weights", []):
        res = check_vllm(load(r["model"]), find_gpu(r["gpu_for_check"]), VLLMOptions(**r["options"]))
        d = res.devices[0]
        yield ("weights, lora", r["split"], r["id"], d.weights_bytes / GIB / r["logged"]["model_loading_gib"] - 1,
               f"adapter slots {d.lora_bytes / GIB:.3f} GiB")
    for r in FEAT.get("multimodal_weights", []):
        got = check_vllm(load(r["model"]), find_gpu("h100-sxm"), VLLMOptions(max_model_len=8192)).devices[0].weights_bytes
        yield "weights, vision tower", r["split"], r["id"], got / GIB / r["logged"]["model_loading_gib"] - 1, ""
    for r in FEAT.get("spec_decode_context", []):
        yield "KV tokens, drafter", r["split"], r["id"], None, r["note"]
    for r in FEAT["multimodal"]:
        yield "KV, encoder profile", r["split"], r["id"], None, r.get("note", "")
    # context rows: vramcalc sizes no encoder profiling peak, so these errors are that peak, not a fitted figure
    for cid, split, _got, _want, err, note in mm_profile_rows():
        yield "KV GiB, mm profile", "context" if split != "context" else split, cid, err, f"[{split}] {note}"
    for cid, split, got, want, err in mm_estimate_rows():
        yield ("KV GiB, mm estimate", split, cid, err, f"with vramcalc's encoder estimate {got:.2f} vs "
               + (f"logged {want:.2f} GiB" if want else "a refused start (at most 0)"))


def main():
    by: dict[tuple[str, str], list[float]] = {}
    for feat, split, cid, err, note in rows():
        print(f"{feat:24} {split:9} {cid:40} {'' if err is None else f'{err:+.2%}':>8}  {note}")
        if err is not None:
            by.setdefault((feat, split), []).append(abs(err))
    print()
    for (feat, split), errs in sorted(by.items()):
        print(f"{feat:24} {split:9} n={len(errs)}  median |error| {statistics.median(errs):.2%}  worst {max(errs):.2%}")
    print("calibration split (\"fit\"): empty among these records")


if __name__ == "__main__":
    main()
